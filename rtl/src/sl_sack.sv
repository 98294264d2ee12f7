// The TCP option walker: finds, in a TCP segment's options, where the SACK block edges are
// and where each timestamp option starts, so a `seq_adjust` record's packets can have every
// edge (original direction) and the timestamp option's TSval (reply) or TSecr (original)
// translated (spec 1.4 for the timestamps). It walks the options exactly as the model does
// (end-of-list stops, NOP is one byte, an option whose length is below 2 or runs past the
// options stops, a SACK option counts only when its length is 2 + 8n, a timestamp option only
// when its length is 10). Every option position's successor is computed at once from the bytes
// (no variable byte select in the walk), then the walk follows successors from position 0,
// STEPS per pipeline stage; 40 bytes hold at most 40 options, so STAGES x STEPS >= 40
// completes it. The results, a mask of the option offsets where a 4-byte edge starts and a mask
// of the offsets where a timestamp option starts, are needed only after the flow lookup, so the
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
  output logic [OPT_BYTES-1:0]    out_edges,
  output logic [OPT_BYTES-1:0]    out_ts
);
  localparam int unsigned N = OPT_BYTES;

  // ---- Per position: successor, stop, SACK blocks (combinational, from the bytes) ----
  logic [6*N-1:0] nxt0;       // position p's successor in [6p +: 6]
  logic [N-1:0] stop0;        // the walk ends at p
  logic [3*N-1:0] blocks0;    // a valid SACK option at p has this many blocks (0..4)
  logic [N-1:0] ts0;          // a valid timestamp option starts at p
  always_comb begin
    logic [7:0] kind, olen;
    for (int p = 0; p < N; p++) begin
      kind = in_opts[8*p +: 8];
      olen = (p + 1 < N) ? in_opts[8*(p+1) +: 8] : 8'd0;
      nxt0[6*p +: 6] = '0;
      stop0[p] = 1'b0;
      blocks0[3*p +: 3] = '0;
      ts0[p] = 1'b0;
      if (6'(p) >= in_len || kind == TCP_OPT_EOL) stop0[p] = 1'b1;
      else if (kind == TCP_OPT_NOP) nxt0[6*p +: 6] = 6'(p + 1);
      else if (6'(p + 1) >= in_len || olen < 8'd2 || 9'(p) + {1'b0, olen} > {3'd0, in_len}) stop0[p] = 1'b1;
      else begin
        nxt0[6*p +: 6] = 6'(p) + olen[5:0];
        if (kind == TCP_OPT_SACK && olen[2:0] == 3'd2) blocks0[3*p +: 3] = olen[5:3];
        if (kind == TCP_OPT_TIMESTAMP && olen == TCP_OPT_TIMESTAMP_LEN) ts0[p] = 1'b1;
      end
    end
  end

  // ---- The walk: {valid, next, stop, ts, blocks, visited, at, done} per stage ----
  localparam int unsigned DONE = 0, AT0 = 1, VIS0 = AT0 + 6, BLK0 = VIS0 + N, TS0 = BLK0 + 3 * N;
  localparam int unsigned STOP0 = TS0 + N, NXT0 = STOP0 + N, VALID = NXT0 + 6 * N, WW = VALID + 1;
  logic [STAGES*WW-1:0] q_all;     // stage g's register in [WW*g +: WW]
  logic [STAGES*WW-1:0] nxt_all;

  always_comb begin
    logic [WW-1:0] w;
    logic [6*N-1:0] nxt;
    logic [N-1:0] stop, visited;
    logic [5:0] at;
    logic done;
    for (int g = 0; g < STAGES; g++) begin
      if (g == 0) w = {in_valid, nxt0, stop0, ts0, blocks0, {N{1'b0}}, 6'd0, 1'b0};
      else w = q_all[WW*(g > 0 ? g - 1 : 0) +: WW];
      nxt = w[NXT0 +: 6*N];
      stop = w[STOP0 +: N];
      visited = w[VIS0 +: N];
      at = w[AT0 +: 6];
      done = w[DONE];
      for (int i = 0; i < STEPS; i++) begin
        if (!done && at < 6'(N)) begin
          visited[at] = 1'b1;
          if (stop[at]) done = 1'b1;
          else at = nxt[6*at +: 6];
        end else done = 1'b1;
      end
      nxt_all[WW*g +: WW] = {w[VALID], nxt, stop, w[TS0 +: N], w[BLK0 +: 3*N], visited, at, done};
    end
  end

  always_ff @(posedge clk) begin
    q_all <= nxt_all;
    if (rst) for (int g = 0; g < STAGES; g++) q_all[WW*g + VALID] <= 1'b0;
  end

  // Edges of every SACK option the walk passed: at p+2, p+6, ... for its 2 x blocks edges; and
  // the start of every timestamp option it passed (a stopping position is visited, but its
  // blocks and timestamp bits are clear).
  always_comb begin
    logic [WW-1:0] w;
    w = q_all[WW*(STAGES-1) +: WW];
    out_valid = w[VALID];
    out_ts = w[TS0 +: N] & w[VIS0 +: N];
    out_edges = '0;
    for (int p = 0; p < N; p++)
      for (int e = 0; e < 8; e++)
        if (w[VIS0 + p] && 3'(e / 2) < w[BLK0 + 3*p +: 3] && p + 2 + 4 * e < N)
          out_edges[p + 2 + 4 * e] = 1'b1;
  end
endmodule
