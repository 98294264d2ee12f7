// The testbench's top: the fast path, wired to the behavioural table memory, with the
// testbench's handles (loading, read-back, status) as ports the C++ driver (tb_main.cpp) sets.
module tb_top
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
(
  input  logic                   clk,
  input  logic                   rst,
  input  logic [15:0]            lat,
  input  logic                   mem_clear,
  input  logic                   ld_rec_we,
  input  logic [31:0]            ld_rec_index,
  input  logic [8*FLOW_RECORD_BYTES-1:0] ld_rec_data,
  input  logic                   ld_bkt_we,
  input  logic [31:0]            ld_bkt_index,
  input  logic [8*INDEX_BUCKET_BYTES-1:0] ld_bkt_data,
  input  logic                   ld_ext_we,
  input  logic [31:0]            ld_ext_index,
  input  logic [8*RECORD_EXT_BYTES-1:0] ld_ext_data,
  input  logic [31:0]            dbg_rec_index,
  output logic [8*FLOW_RECORD_BYTES-1:0] dbg_rec_data,
  input  logic                   in_valid,
  output logic                   in_ready,
  input  logic [8*BUS_BYTES-1:0] in_data,
  input  logic [BUS_BYTES-1:0]   in_keep,
  input  logic                   in_last,
  input  logic [2:0]             in_port,
  output logic                   tx_valid,
  output logic [8*BUS_BYTES-1:0] tx_data,
  output logic [BUS_BYTES-1:0]   tx_keep,
  output logic                   tx_last,
  output logic [2:0]             tx_port,
  output logic                   pt_valid,
  output logic [8*BUS_BYTES-1:0] pt_data,
  output logic [BUS_BYTES-1:0]   pt_keep,
  output logic                   pt_last,
  output logic [8*EXCEPTION_DESC_BYTES-1:0] pt_desc,
  output logic                   drop_valid,
  output logic [7:0]             drop_reason,
  output logic                   ev_valid,
  output logic [7:0]             ev_cause,
  output logic [31:0]            ev_record,
  output logic [31:0]            ev_cookie,
  input  logic                   reg_we,
  input  logic [31:0]            reg_addr,
  input  logic [31:0]            reg_wdata,
  output logic [63:0]            reg_rdata,
  input  logic [31:0]            st_now_ticks,
  input  logic [63:0]            st_now_ns,
  input  logic [7:0]             st_link_up,
  input  logic [15:0]            st_ring_full,
  input  logic [31:0]            st_records,
  input  logic [31:0]            st_buckets,
  input  logic [31:0]            st_next_hops,
  input  logic                   tbl_we,
  input  logic                   tbl_sel,
  input  logic [11:0]            tbl_addr,
  input  logic [127:0]           tbl_wdata,
  output logic                   idle,
  output logic                   retry   // a second record read (signature collision)
);
  status_t status;
  always_comb begin
    status.now_ticks = st_now_ticks;
    status.now_ns = st_now_ns;
    status.link_up = st_link_up[NPORTS-1:0];
    status.ring_full = st_ring_full[NQUEUES-1:0];
    status.records = st_records;
    status.buckets = st_buckets;
    status.next_hops = st_next_hops;
  end

  logic idx_req_valid, idx_rsp_valid, rec_req_valid, rec_req_tag, rec_rsp_valid, rec_rsp_tag;
  logic [31:0] idx_req_a, idx_req_b, rec_req_index;
  logic [8*INDEX_BUCKET_BYTES-1:0] idx_rsp_a, idx_rsp_b;
  logic [8*FLOW_RECORD_BYTES-1:0] rec_rsp_data;
  logic [8*RECORD_EXT_BYTES-1:0] rec_rsp_ext;
  logic upd_valid, upd_reply, upd_teardown, upd_count;
  logic [31:0] upd_record, upd_last_seen;
  logic [7:0] upd_flags;
  logic [15:0] upd_bytes;
  assign retry = rec_req_valid && rec_req_tag;

  sl_fastpath u_dut (
    .clk, .rst, .in_valid, .in_ready, .in_data, .in_keep, .in_last, .in_port,
    .tx_valid, .tx_ready(1'b1), .tx_data, .tx_keep, .tx_last, .tx_port,
    .pt_valid, .pt_ready(1'b1), .pt_data, .pt_keep, .pt_last, .pt_desc,
    .drop_valid, .drop_reason, .ev_valid, .ev_cause, .ev_record, .ev_cookie,
    .reg_we, .reg_addr, .reg_wdata, .reg_rdata, .status,
    .tbl_we, .tbl_sel, .tbl_addr, .tbl_wdata,
    .idx_req_valid, .idx_req_a, .idx_req_b, .idx_rsp_valid, .idx_rsp_a, .idx_rsp_b,
    .rec_req_valid, .rec_req_index, .rec_req_tag, .rec_rsp_valid, .rec_rsp_tag, .rec_rsp_data,
    .rec_rsp_ext,
    .upd_valid, .upd_record, .upd_reply, .upd_flags, .upd_last_seen, .upd_teardown, .upd_count,
    .upd_bytes, .idle);

  sl_flowmem u_mem (
    .clk, .lat, .clear(mem_clear), .ld_rec_we, .ld_rec_index, .ld_rec_data, .ld_bkt_we, .ld_bkt_index,
    .ld_bkt_data, .ld_ext_we, .ld_ext_index, .ld_ext_data, .dbg_rec_index, .dbg_rec_data,
    .idx_req_valid, .idx_req_a, .idx_req_b, .idx_rsp_valid, .idx_rsp_a, .idx_rsp_b,
.rec_req_valid, .rec_req_index, .rec_req_tag, .rec_rsp_valid, .rec_rsp_tag, .rec_rsp_data,
    .rec_rsp_ext,
    .upd_valid, .upd_record, .upd_reply, .upd_flags, .upd_last_seen, .upd_teardown, .upd_count,
    .upd_bytes);
endmodule
