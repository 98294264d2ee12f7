// The flow table's memory, behavioural (testbench only): records at `record index` and index
// buckets at `bucket number`, in the layouts of sluice_spec_pkg, behind two index read ports and
// one record read port that answer exactly `lat` cycles after each request, in order (a DRAM or
// HBM controller with its queues, reduced to its latency); the record read port also returns
// the record's extension word (spec 1.4, `RecordExt`) from the record extension memory, a RAM
// of its own read at the same index in the same cycle; and an update port that applies a
// hit's write-back atomically: TCP flags OR, last_seen, teardown, and with `count` one more
// packet and `bytes` more bytes in the direction's counters (a memory-side read-modify-write
// unit, so back-to-back hits on one flow never lose an update). Loaded and read back by the
// C++ testbench through the ld_/dbg_ ports.
/* verilator lint_off BLKSEQ */
module sl_flowmem
  import sluice_spec_pkg::*;
#(
  parameter int unsigned RECORDS = 4096,
  parameter int unsigned BUCKETS = 2048,
  parameter int unsigned RING = 1024            // latency at most RING - 1
) (
  input  logic        clk,
  input  logic [15:0] lat,
  input  logic        clear,
  input  logic        ld_rec_we,
  input  logic [31:0] ld_rec_index,
  input  logic [8*FLOW_RECORD_BYTES-1:0] ld_rec_data,
  input  logic        ld_bkt_we,
  input  logic [31:0] ld_bkt_index,
  input  logic [8*INDEX_BUCKET_BYTES-1:0] ld_bkt_data,
  input  logic        ld_ext_we,
  input  logic [31:0] ld_ext_index,
  input  logic [8*RECORD_EXT_BYTES-1:0] ld_ext_data,
  input  logic [31:0] dbg_rec_index,
  output logic [8*FLOW_RECORD_BYTES-1:0] dbg_rec_data,
  input  logic        idx_req_valid,
  input  logic [31:0] idx_req_a,
  input  logic [31:0] idx_req_b,
  output logic        idx_rsp_valid,
  output logic [8*INDEX_BUCKET_BYTES-1:0] idx_rsp_a,
  output logic [8*INDEX_BUCKET_BYTES-1:0] idx_rsp_b,
  input  logic        rec_req_valid,
  input  logic [31:0] rec_req_index,
  input  logic        rec_req_tag,
  output logic        rec_rsp_valid,
  output logic        rec_rsp_tag,
  output logic [8*FLOW_RECORD_BYTES-1:0] rec_rsp_data,
  output logic [8*RECORD_EXT_BYTES-1:0] rec_rsp_ext,
  input  logic        upd_valid,
  input  logic [31:0] upd_record,
  input  logic        upd_reply,
  input  logic [7:0]  upd_flags,
  input  logic [31:0] upd_last_seen,
  input  logic        upd_teardown,
  input  logic        upd_count,
  input  logic [15:0] upd_bytes
);
  localparam int unsigned RB = 8 * FLOW_RECORD_BYTES, IB = 8 * INDEX_BUCKET_BYTES, EB = 8 * RECORD_EXT_BYTES;
  logic [RB-1:0] recs [RECORDS];
  logic [EB-1:0] exts [RECORDS];
  logic [IB-1:0] bkts [BUCKETS];

  logic [IB-1:0] ia [RING], ib [RING];
  logic iv [RING];
  logic [RB-1:0] rd [RING];
  logic [EB-1:0] re [RING];
  logic rv [RING], rt [RING];
  int unsigned now;

  function automatic logic [RB-1:0] rec_at(input logic [31:0] i);
    return i < RECORDS ? recs[i] : '0;
  endfunction
  function automatic logic [EB-1:0] ext_at(input logic [31:0] i);
    return i < RECORDS ? exts[i] : '0;
  endfunction
  function automatic logic [IB-1:0] bkt_at(input logic [31:0] i);
    return i < BUCKETS ? bkts[i] : '0;
  endfunction

  assign dbg_rec_data = rec_at(dbg_rec_index);

  // Blocking writes to the arrays: this block alone reads and writes them, in program order.
  always @(posedge clk) begin
    int unsigned at, slot;
    logic [RB-1:0] r;
    logic [31:0] ctl, p32;
    logic [63:0] b64;
    slot = now % RING;
    at = (now + 32'(lat) - 1) % RING;
    idx_rsp_valid <= iv[slot];
    idx_rsp_a <= ia[slot];
    idx_rsp_b <= ib[slot];
    rec_rsp_valid <= rv[slot];
    rec_rsp_tag <= rt[slot];
    rec_rsp_data <= rd[slot];
    rec_rsp_ext <= re[slot];
    iv[slot] = 1'b0;
    rv[slot] = 1'b0;
    // A response stored now in slot now + lat - 1 is read out then and presented one register
    // later: the pipeline sees it exactly `lat` cycles (lat >= 1) after the request.
    if (idx_req_valid) begin
      iv[at] = 1'b1;
      ia[at] = bkt_at(idx_req_a);
      ib[at] = bkt_at(idx_req_b);
    end
    if (rec_req_valid) begin
      rv[at] = 1'b1;
      rt[at] = rec_req_tag;
      rd[at] = rec_at(rec_req_index);
      re[at] = ext_at(rec_req_index);
    end
    now <= now + 1;
    if (upd_valid && upd_record < RECORDS) begin
      r = recs[upd_record];
      ctl = r[8*FLOW_RECORD_CTL_VALID_OFFSET +: 32];
      if (upd_teardown) ctl[FLOW_RECORD_CTL_TEARDOWN_LSB] = 1'b1;
      r[8*FLOW_RECORD_CTL_VALID_OFFSET +: 32] = ctl;
      r[8*FLOW_RECORD_LAST_SEEN_OFFSET +: 32] = upd_last_seen;
      if (upd_reply) begin
        r[8*FLOW_RECORD_TCP_FLAGS_REPLY_OFFSET +: 8] = r[8*FLOW_RECORD_TCP_FLAGS_REPLY_OFFSET +: 8] | upd_flags;
        if (upd_count) begin
          p32 = r[8*FLOW_RECORD_PACKETS_REPLY_OFFSET +: 32] + 32'd1;
          b64 = r[8*FLOW_RECORD_BYTES_REPLY_OFFSET +: 64] + {48'd0, upd_bytes};
          r[8*FLOW_RECORD_PACKETS_REPLY_OFFSET +: 32] = p32;
          r[8*FLOW_RECORD_BYTES_REPLY_OFFSET +: 64] = b64;
        end
      end else begin
        r[8*FLOW_RECORD_TCP_FLAGS_ORIG_OFFSET +: 8] = r[8*FLOW_RECORD_TCP_FLAGS_ORIG_OFFSET +: 8] | upd_flags;
        if (upd_count) begin
          p32 = r[8*FLOW_RECORD_PACKETS_ORIG_OFFSET +: 32] + 32'd1;
          b64 = r[8*FLOW_RECORD_BYTES_ORIG_OFFSET +: 64] + {48'd0, upd_bytes};
          r[8*FLOW_RECORD_PACKETS_ORIG_OFFSET +: 32] = p32;
          r[8*FLOW_RECORD_BYTES_ORIG_OFFSET +: 64] = b64;
        end
      end
      recs[upd_record] = r;
    end
    if (ld_rec_we && ld_rec_index < RECORDS) recs[ld_rec_index] = ld_rec_data;
    if (ld_bkt_we && ld_bkt_index < BUCKETS) bkts[ld_bkt_index] = ld_bkt_data;
    if (ld_ext_we && ld_ext_index < RECORDS) exts[ld_ext_index] = ld_ext_data;
    if (clear) begin
      for (int i = 0; i < RECORDS; i++) begin recs[i] = '0; exts[i] = '0; end
      for (int i = 0; i < BUCKETS; i++) bkts[i] = '0;
      for (int i = 0; i < RING; i++) begin iv[i] = 1'b0; rv[i] = 1'b0; end
    end
  end
endmodule
/* verilator lint_on BLKSEQ */
