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
  typedef struct packed {
    logic                   valid;
    logic [8*OPT_BYTES-1:0] opts;
    logic [5:0]             len;
    logic [6:0]             at;
    logic                   done;
    logic [OPT_BYTES-1:0]   edges;
  } walk_t;

  function automatic walk_t step(input walk_t w);
    walk_t n;
    logic [7:0] kind, olen;
    logic [OPT_BYTES-1:0] marks;
    n = w;
    kind = (w.at < 7'd40) ? w.opts[8*w.at[5:0] +: 8] : 8'd0;
    olen = (w.at < 7'd39) ? w.opts[8*(w.at[5:0]+6'd1) +: 8] : 8'd0;
    if (w.done || w.at >= {1'b0, w.len} || kind == TCP_OPT_EOL) begin
      n.done = 1'b1;
    end else if (kind == TCP_OPT_NOP) begin
      n.at = w.at + 7'd1;
    end else if (w.at + 7'd1 >= {1'b0, w.len} || olen < 8'd2 || {1'b0, w.at} + {1'b0, olen} > {2'b0, w.len}) begin
      n.done = 1'b1;
    end else begin
      if (kind == TCP_OPT_SACK && olen[2:0] == 3'd2) begin
        // Edges at at+2, at+6, ... below at+len: (len-2)/4 of them, 0 to 8.
        marks = '0;
        for (int e = 0; e < 8; e++)
          if (8'(4 * e + 6) <= olen) marks[4 * e] = 1'b1;
        n.edges = w.edges | (marks << (w.at + 7'd2));
      end
      n.at = w.at + {1'b0, olen[5:0]};
    end
    return n;
  endfunction

  walk_t first;
  always_comb begin
    first = '0;
    first.valid = in_valid;
    first.opts = in_opts;
    first.len = in_len;
  end

  for (genvar g = 0; g < STAGES; g++) begin : g_stage
    walk_t w, q;
    always_comb begin
      if (g == 0) w = first;
      else w = g_stage[g > 0 ? g - 1 : 0].q;
      for (int i = 0; i < STEPS; i++) w = step(w);
    end
    always_ff @(posedge clk) begin
      q <= w;
      if (rst) q.valid <= 1'b0;
    end
  end

  assign out_valid = g_stage[STAGES-1].q.valid;
  assign out_edges = g_stage[STAGES-1].q.edges;
endmodule
