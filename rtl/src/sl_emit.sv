// The emit stage: reads each frame back from the packet buffer and, as the action stage
// decided, sends it rewritten (the first two beats edited, the new L2 header in front, the IP
// packet realigned by the difference of the L2 lengths, Ethernet padding left behind), punts it
// unchanged with its exception descriptor on the last beat, or drops it. One beat per cycle;
// a one-beat frame takes one cycle, so 64-byte frames leave at one per cycle.
module sl_emit
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
(
  input  logic                   clk,
  input  logic                   rst,
  // The action FIFO's head.
  input  logic                   act_valid,
  input  act_t                   act,
  output logic                   act_pop,
  // The packet buffer's head: {last, keep, data}.
  input  logic                   buf_valid,
  input  logic [8*BUS_BYTES+BUS_BYTES:0] buf_dout,
  output logic                   buf_pop,
  // Transmit stream.
  output logic                   tx_valid,
  input  logic                   tx_ready,
  output logic [8*BUS_BYTES-1:0] tx_data,
  output logic [BUS_BYTES-1:0]   tx_keep,
  output logic                   tx_last,
  output logic [2:0]             tx_port,
  // Punt stream (to the exception DMA writer); the descriptor is valid with the last beat.
  output logic                   pt_valid,
  input  logic                   pt_ready,
  output logic [8*BUS_BYTES-1:0] pt_data,
  output logic [BUS_BYTES-1:0]   pt_keep,
  output logic                   pt_last,
  output logic [8*EXCEPTION_DESC_BYTES-1:0] pt_desc,
  // Drops.
  output logic                   drop_valid,
  output logic [7:0]             drop_reason
);
  localparam int unsigned DB = 8 * BUS_BYTES;

  logic [10:0] ip, op;        // input beats consumed, output beats sent, of the head frame
  logic [DB-1:0] prev;        // the previous (edited) input beat
  logic [10:0] out_beats;
  logic [DB-1:0] cur, beat, edited;
  logic [BUS_BYTES-1:0] cur_keep;
  logic cur_last;
  logic stall, emit, take, done;
  logic [10:0] need;

  assign {cur_last, cur_keep, cur} = buf_dout;
  assign out_beats = 11'((act.out_len + 16'd63) >> 6);
  assign stall = (tx_valid && !tx_ready) || (pt_valid && !pt_ready);

  // The beat with the rewrite's edits (beats 0 and 1 only).
  always_comb begin
    edited = cur;
    for (int i = 0; i < BUS_BYTES; i++) begin
      if (ip == 0 && act.edit_mask[i]) edited[8*i +: 8] = act.edit_val[8*i +: 8];
      if (ip == 1 && act.edit_mask[BUS_BYTES + i]) edited[8*i +: 8] = act.edit_val[8*(BUS_BYTES + i) +: 8];
    end
  end

  // What this cycle does for the head frame.
  always_comb begin
    take = 1'b0;     // consume an input beat
    emit = 1'b0;     // send an output beat
    done = 1'b0;     // the frame is finished
    beat = '0;
    need = op + (act.shift == 2'd1 ? 11'd1 : 11'd0);
    if (act_valid && !stall) begin
      case (act.kind)
        A_TX: begin
          if (op == out_beats) begin
            // Sent: consume what is left (padding), then finish.
            take = buf_valid && ip != act.in_beats;
            done = ip == act.in_beats || (take && ip + 1 == act.in_beats);
          end else if (act.shift == 2'd1 && ip == 0) begin
            take = buf_valid;                                 // first of the two beats it needs
          end else if (need < act.in_beats) begin
            take = buf_valid;
            emit = buf_valid;
          end else begin
            emit = 1'b1;                                      // the input has run out
          end
          case (act.shift)
            2'd1: beat = {(need < act.in_beats) ? edited[31:0] : 32'd0, prev[DB-1:32]};
            2'd2: beat = {(need < act.in_beats) ? edited[DB-33:0] : {(DB-32){1'b0}}, prev[DB-1:DB-32]};
            default: beat = edited;
          endcase
          if (op == 0)
            for (int i = 0; i < 18; i++)
              if (i < act.l2_len) beat[8*i +: 8] = act.l2[8*i +: 8];
          if (emit && op + 1 == out_beats && (ip + (take ? 11'd1 : 11'd0)) == act.in_beats) done = 1'b1;
        end
        default: begin
          take = buf_valid;
          emit = buf_valid && act.kind == A_PUNT;
          done = buf_valid && ip + 1 == act.in_beats;
          beat = cur;
        end
      endcase
    end
  end

  assign buf_pop = take;
  assign act_pop = done;

  always_ff @(posedge clk) begin
    if (rst) begin
      ip <= '0; op <= '0;
      tx_valid <= 1'b0; pt_valid <= 1'b0; drop_valid <= 1'b0;
    end else begin
      if (!stall) begin
        tx_valid <= 1'b0;
        pt_valid <= 1'b0;
      end
      drop_valid <= 1'b0;
      if (take) prev <= edited;
      if (done) begin
        ip <= '0; op <= '0;
      end else begin
        if (take) ip <= ip + 1'b1;
        if (emit) op <= op + 1'b1;
      end
      if (emit && act.kind == A_TX) begin
        tx_valid <= 1'b1;
        tx_data <= beat;
        tx_port <= act.port;
        tx_last <= op + 1 == out_beats;
        for (int i = 0; i < BUS_BYTES; i++)
          tx_keep[i] <= (op + 1 == out_beats) ? (16'(i) < act.out_len - {op[9:0], 6'd0}) : 1'b1;
      end
      if (emit && act.kind == A_PUNT) begin
        pt_valid <= 1'b1;
        pt_data <= beat;
        pt_keep <= cur_keep;
        pt_last <= cur_last;
        pt_desc <= act.desc;
      end
      if (done && act.kind == A_DROP) begin
        drop_valid <= 1'b1;
        drop_reason <= act.reason;
      end
    end
  end
endmodule
