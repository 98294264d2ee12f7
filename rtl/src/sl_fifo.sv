// A first-word-fall-through FIFO: `dout` is the oldest entry whenever `valid` is set, and
// `pop` removes it. Deep FIFOs (RAM = 1) keep their entries in a memory with one synchronous
// read port (what block RAM offers) and prefetch into a two-entry output queue, so a push and a
// pop every cycle sustain one entry per cycle; shallow ones (RAM = 0) are registers.
// `level` counts every entry held, for credit and almost-full checks.
module sl_fifo #(
  parameter int unsigned W = 8,
  parameter int unsigned DEPTH = 16,
  parameter bit RAM = 1'b1
) (
  input  logic                       clk,
  input  logic                       rst,
  input  logic                       push,
  input  logic [W-1:0]               din,
  input  logic                       pop,
  output logic                       valid,
  output logic [W-1:0]               dout,
  output logic [$clog2(DEPTH+3):0]   level
);
  localparam int unsigned AW = $clog2(DEPTH);
  typedef logic [$clog2(DEPTH+3):0] fill_t;

  logic [W-1:0] mem [DEPTH];
  logic [AW-1:0] wr_ptr, rd_ptr;

  if (RAM) begin : g_ram
    fill_t in_ram;               // written, not yet read out of the memory
    logic inflight;             // a read issued last cycle lands in the queue now
    logic [W-1:0] rd_q;
    logic [W-1:0] q0, q1;       // output queue: q0 is the head
    logic [1:0] qn;
    logic issue;
    logic [1:0] after_pop;

    assign after_pop = qn - {1'b0, pop & (qn != 0)};
    // Read ahead while the queue (counting the read in flight) would hold fewer than two.
    assign issue = (in_ram != 0) && ({1'b0, after_pop} + {2'b0, inflight} < 3'd2);

    always_ff @(posedge clk) begin
      if (push) mem[wr_ptr] <= din;
      if (issue) rd_q <= mem[rd_ptr];
    end

    always_ff @(posedge clk) begin
      if (rst) begin
        wr_ptr <= '0; rd_ptr <= '0; in_ram <= '0; inflight <= 1'b0; qn <= '0;
      end else begin
        if (push) wr_ptr <= wr_ptr + 1'b1;
        if (issue) rd_ptr <= rd_ptr + 1'b1;
        in_ram <= in_ram + (push) - (issue);
        inflight <= issue;
        // The queue: drop the head on pop, then append what landed.
        case ({inflight, pop && qn != 0})
          2'b01: begin q0 <= q1; qn <= qn - 1'b1; end
          2'b10: begin
            if (qn == 0) q0 <= rd_q; else q1 <= rd_q;
            qn <= qn + 1'b1;
          end
          2'b11: begin
            if (qn == 1) q0 <= rd_q; else begin q0 <= q1; q1 <= rd_q; end
          end
          default: ;
        endcase
      end
    end

    assign valid = qn != 0;
    assign dout = q0;
    assign level = in_ram + (inflight) + (qn);
  end else begin : g_regs
    fill_t n;
    always_ff @(posedge clk) begin
      if (push) mem[wr_ptr] <= din;
      if (rst) begin
        wr_ptr <= '0; rd_ptr <= '0; n <= '0;
      end else begin
        if (push) wr_ptr <= wr_ptr + 1'b1;
        if (pop && n != 0) rd_ptr <= rd_ptr + 1'b1;
        n <= n + (push) - (pop && n != 0);
      end
    end
    assign valid = n != 0;
    assign dout = mem[rd_ptr];
    assign level = n;
  end

`ifndef SYNTHESIS
  // A push into a full FIFO is a bug of the credit logic around it, never a normal event.
  always_ff @(posedge clk) begin
    if (!rst && push && level >= ($clog2(DEPTH+3)+1)'(DEPTH)) $error("sl_fifo: push into a full FIFO (DEPTH %0d)", DEPTH);
  end
`endif
endmodule
