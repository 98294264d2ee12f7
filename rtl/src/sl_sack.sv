// The SACK walker: finds, in a TCP segment's options, where the SACK block edges are, so a
// `seq_adjust` record's original-direction packets can have every edge translated. It walks
// the options exactly as the model does (end-of-list stops, NOP is one byte, an option whose
// length is below 2 or runs past the options stops, a SACK option counts only when its length
// is 2 + 8n), one option per step, STEPS steps per pipeline stage; 40 bytes hold at most 40
// options, so the walk is complete after STAGES × STEPS ≥ 40 steps. The result, a mask of the
// option offsets where a 4-byte edge starts, is needed only after the flow lookup, so the
// walker runs beside the lookup in its own narrow pipeline.
module sl_sack
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
#(
  parameter int unsigned STEPS = 4,
  parameter int unsigned STAGES = 10
) (
  input  logic                    clk,
  input  logic                    rst,
  input  logic                    in_valid,
  input  logic [8*OPT_BYTES-1:0]  in_opts,
  input  logic [5:0]              in_len,
  output logic                    out_valid,
  output logic [OPT_BYTES-1:0]    out_edges
);
  // One walk's state, as a vector (Yosys 0.23 reads no struct members of local variables):
  // {valid, opts, len, at, done, edges}, most significant first.
  localparam int unsigned E0 = 0, DONE = OPT_BYTES, AT0 = DONE + 1, LEN0 = AT0 + 7, OPT0 = LEN0 + 6;
  localparam int unsigned VALID = OPT0 + 8 * OPT_BYTES, WW = VALID + 1;

  logic [STAGES*WW-1:0] q_all;     // stage g's register in [WW*g +: WW]
  logic [STAGES*WW-1:0] nxt_all;

  always_comb begin
    logic [WW-1:0] w;
    logic [7:0] kind, olen;
    logic [OPT_BYTES-1:0] marks, edges;
    logic [8*OPT_BYTES-1:0] opts;
    logic [6:0] at;
    logic [5:0] len;
    logic done;
    for (int g = 0; g < STAGES; g++) begin
      if (g == 0) w = {in_valid, in_opts, in_len, 7'd0, 1'b0, {OPT_BYTES{1'b0}}};
      else w = q_all[WW*(g > 0 ? g - 1 : 0) +: WW];
      opts = w[OPT0 +: 8*OPT_BYTES];
      len = w[LEN0 +: 6];
      at = w[AT0 +: 7];
      done = w[DONE];
      edges = w[E0 +: OPT_BYTES];
      // One option per step.
      for (int i = 0; i < STEPS; i++) begin
        kind = (at < 7'd40) ? opts[8*at[5:0] +: 8] : 8'd0;
        olen = (at < 7'd39) ? opts[8*(at[5:0]+6'd1) +: 8] : 8'd0;
        marks = '0;
        if (done || at >= {1'b0, len} || kind == TCP_OPT_EOL) begin
          done = 1'b1;
        end else if (kind == TCP_OPT_NOP) begin
          at = at + 7'd1;
        end else if (at + 7'd1 >= {1'b0, len} || olen < 8'd2 || {1'b0, at} + {1'b0, olen} > {2'b0, len}) begin
          done = 1'b1;
        end else begin
          if (kind == TCP_OPT_SACK && olen[2:0] == 3'd2) begin
            // Edges at at+2, at+6, ... below at+len: (len-2)/4 of them, 0 to 8.
            for (int e = 0; e < 8; e++)
              if (8'(4 * e + 6) <= olen) marks[4 * e] = 1'b1;
            edges = edges | (marks << (at + 7'd2));
          end
          at = at + {1'b0, olen[5:0]};
        end
      end
      nxt_all[WW*g +: WW] = {w[VALID], opts, len, at, done, edges};
    end
  end

  always_ff @(posedge clk) begin
    q_all <= nxt_all;
    if (rst) for (int g = 0; g < STAGES; g++) q_all[WW*g + VALID] <= 1'b0;
  end

  assign out_valid = q_all[WW*(STAGES-1) + VALID];
  assign out_edges = q_all[WW*(STAGES-1) + E0 +: OPT_BYTES];
endmodule
