// The Sluice NIC's fast path: a 512-bit receive stream in; a transmit stream, a punt stream
// (frames and exception descriptors for the exception DMA writer), drops, flow events, record
// write-backs and counters out; the flow table's records (with their extension words, spec
// 1.4) and index buckets in an external memory with a fixed read latency. See rtl/README.md for the pipeline.
//
//   ingress ─► parse ─► hash ─┬─► lookup (index read, candidates, record read, compare) ─┐
//      │                      ├─► metadata FIFO ────────────────────────────────────────┼─► action ─► emit ─► tx / punt / drop
//      │                      └─► option walker ─► SACK FIFO ───────────────────────────┘     ▲
//      └─► packet buffer (every beat) ───────────────────────────────────────────────────────┘
//
// Synthesizable; the only behavioural part of the testbench is the table memory (rtl/tb).
module sl_fastpath
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
#(
  parameter int unsigned LOOKUP_DEPTH = 512,   // reads in flight per memory stage (>= latency)
  parameter int unsigned BUF_DEPTH = 1024      // packets (and beats) in flight
) (
  input  logic                   clk,
  input  logic                   rst,
  // Receive stream.
  input  logic                   in_valid,
  output logic                   in_ready,
  input  logic [8*BUS_BYTES-1:0] in_data,
  input  logic [BUS_BYTES-1:0]   in_keep,
  input  logic                   in_last,
  input  logic [2:0]             in_port,
  // Transmit stream.
  output logic                   tx_valid,
  input  logic                   tx_ready,
  output logic [8*BUS_BYTES-1:0] tx_data,
  output logic [BUS_BYTES-1:0]   tx_keep,
  output logic                   tx_last,
  output logic [2:0]             tx_port,
  // Punt stream.
  output logic                   pt_valid,
  input  logic                   pt_ready,
  output logic [8*BUS_BYTES-1:0] pt_data,
  output logic [BUS_BYTES-1:0]   pt_keep,
  output logic                   pt_last,
  output logic [8*EXCEPTION_DESC_BYTES-1:0] pt_desc,
  // Drops.
  output logic                   drop_valid,
  output logic [7:0]             drop_reason,
  // Flow-info events.
  output logic                   ev_valid,
  output logic [7:0]             ev_cause,
  output logic [31:0]            ev_record,
  output logic [31:0]            ev_cookie,
  // Register access (BAR0 offsets).
  input  logic                   reg_we,
  input  logic [31:0]            reg_addr,
  input  logic [31:0]            reg_wdata,
  output logic [63:0]            reg_rdata,
  // Status from the rest of the NIC, and the image's geometry.
  input  status_t                status,
  // On-chip tables (stash, next hops): written by the command engine, the testbench here.
  input  logic                   tbl_we,
  input  logic                   tbl_sel,            // 0 stash, 1 next hop
  input  logic [11:0]            tbl_addr,
  input  logic [127:0]           tbl_wdata,
  // Table memory: index reads, record reads, record updates.
  output logic                   idx_req_valid,
  output logic [31:0]            idx_req_a,
  output logic [31:0]            idx_req_b,
  input  logic                   idx_rsp_valid,
  input  logic [8*INDEX_BUCKET_BYTES-1:0] idx_rsp_a,
  input  logic [8*INDEX_BUCKET_BYTES-1:0] idx_rsp_b,
  output logic                   rec_req_valid,
  output logic [31:0]            rec_req_index,
  output logic                   rec_req_tag,
  input  logic                   rec_rsp_valid,
  input  logic                   rec_rsp_tag,
  input  logic [8*FLOW_RECORD_BYTES-1:0] rec_rsp_data,
  input  logic [8*RECORD_EXT_BYTES-1:0] rec_rsp_ext,   // the record extension memory (spec 1.4)
  output logic                   upd_valid,
  output logic [31:0]            upd_record,
  output logic                   upd_reply,
  output logic [7:0]             upd_flags,
  output logic [31:0]            upd_last_seen,
  output logic                   upd_teardown,
  output logic                   upd_count,
  output logic [15:0]            upd_bytes,
  // Nothing in flight (for the testbench).
  output logic                   idle
);
  localparam int unsigned BW = 8 * BUS_BYTES + BUS_BYTES + 1;
  localparam int unsigned LK_DEPTH = 64, SMALL = 16;
  typedef logic [$clog2(BUF_DEPTH+3):0] blvl_t;
  typedef logic [$clog2(LK_DEPTH+3):0] llvl_t;
  typedef logic [$clog2(SMALL+3):0] slvl_t;

  cfg_t cfg;
  sl_regs u_regs (.clk, .rst, .we(reg_we), .addr(reg_addr), .wdata(reg_wdata), .rdata(reg_rdata), .cnt(cnt), .cfg(cfg));

  // The stash: on-chip, every entry compared on every lookup.
  logic [64*NSTASH-1:0] stash;
  always_ff @(posedge clk) begin
    if (rst) stash <= '0;
    else if (tbl_we && !tbl_sel && 32'(tbl_addr) < NSTASH) stash[64*tbl_addr[$clog2(NSTASH)-1:0] +: 64] <= tbl_wdata[63:0];
  end

  // ---- Ingress and the packet buffer ----
  logic buf_push, buf_valid, buf_pop;
  logic [BW-1:0] buf_din, buf_dout;
  blvl_t buf_level, meta_level, sack_level;
  llvl_t lk_level;
  logic front_room;
  logic fr_valid;
  logic [8*WIN_BYTES-1:0] fr_win;
  logic [15:0] fr_len;
  logic [2:0] fr_port;
  logic ingress_idle;

  // Every FIFO the front end feeds keeps room for what the parse and hash stages hold.
  assign front_room = meta_level < (BUF_DEPTH - 32) && sack_level < (BUF_DEPTH - 32)
                      && lk_level < (LK_DEPTH - 16);

  sl_ingress u_ingress (
    .clk, .rst, .in_valid, .in_ready, .in_data, .in_keep, .in_last, .in_port,
    .buf_room(buf_level < (BUF_DEPTH - 4)), .front_room,
    .buf_push, .buf_din, .frame_valid(fr_valid), .frame_win(fr_win), .frame_len(fr_len),
    .frame_port(fr_port));
  assign ingress_idle = !fr_valid;

  sl_fifo #(.W(BW), .DEPTH(BUF_DEPTH)) u_buf (
    .clk, .rst, .push(buf_push), .din(buf_din), .pop(buf_pop), .valid(buf_valid), .dout(buf_dout),
    .level(buf_level));

  // ---- Parse, SACK walk, hash ----
  logic p_valid, p_lookup, p_ip;
  meta_t p_meta;
  logic [8*KEY_BYTES-1:0] p_key, p_skey;
  logic [127:0] p_dst;
  sl_parse u_parse (
    .clk, .rst, .in_valid(fr_valid), .in_win(fr_win), .in_len(fr_len), .in_port(fr_port),
    .out_valid(p_valid), .out_meta(p_meta), .out_lookup(p_lookup), .out_key(p_key), .out_ip(p_ip),
    .out_steer_key(p_skey), .out_dst(p_dst));

  logic sk_valid, sack_valid, sack_pop;
  logic [OPT_BYTES-1:0] sk_edges, sk_ts;
  logic [2*OPT_BYTES-1:0] sack_head;   // {timestamp option starts, SACK edges}
  sl_sack u_sack (
    .clk, .rst, .in_valid(p_valid), .in_opts(p_meta.opts), .in_len(p_meta.opt_len),
    .out_valid(sk_valid), .out_edges(sk_edges), .out_ts(sk_ts));
  sl_fifo #(.W(2 * OPT_BYTES), .DEPTH(BUF_DEPTH)) u_sack_fifo (
    .clk, .rst, .push(sk_valid), .din({sk_ts, sk_edges}), .pop(sack_pop), .valid(sack_valid),
    .dout(sack_head), .level(sack_level));

  logic h_meta_valid, h_lk_valid, h_lk_lookup;
  meta_t h_meta;
  logic [8*KEY_BYTES-1:0] h_key;
  logic [31:0] h_a, h_b;
  logic [15:0] h_sig;
  sl_hash u_hash (
    .clk, .rst, .cfg, .buckets(status.buckets), .in_valid(p_valid), .in_meta(p_meta),
    .in_lookup(p_lookup), .in_key(p_key), .in_ip(p_ip), .in_steer_key(p_skey), .in_dst(p_dst),
    .meta_valid(h_meta_valid), .meta(h_meta), .lk_valid(h_lk_valid), .lk_lookup(h_lk_lookup),
    .lk_key(h_key), .lk_bucket_a(h_a), .lk_bucket_b(h_b), .lk_sig(h_sig));

  logic meta_valid;
  meta_t meta_head;
  sl_fifo #(.W($bits(h_meta)), .DEPTH(BUF_DEPTH)) u_meta (
    .clk, .rst, .push(h_meta_valid), .din(h_meta), .pop(sack_pop), .valid(meta_valid), .dout(meta_head),
    .level(meta_level));

  localparam int unsigned LKW = 1 + 8 * KEY_BYTES + 32 + 32 + 16;
  logic lk_valid, lk_pop, lk_lookup;
  logic [8*KEY_BYTES-1:0] lk_key;
  logic [31:0] lk_a, lk_b;
  logic [15:0] lk_sig;
  sl_fifo #(.W(LKW), .DEPTH(LK_DEPTH), .RAM(1'b0)) u_lk (
    .clk, .rst, .push(h_lk_valid), .din({h_lk_lookup, h_key, h_a, h_b, h_sig}), .pop(lk_pop),
    .valid(lk_valid), .dout({lk_lookup, lk_key, lk_a, lk_b, lk_sig}), .level(lk_level));

  // ---- Lookup ----
  logic res_push, res_valid;
  result_t res_in, res_head;
  slvl_t res_level;
  sl_lookup #(.DEPTH(LOOKUP_DEPTH)) u_lookup (
    .clk, .rst, .records(status.records), .stash,
    .lk_valid, .lk_pop, .lk_lookup, .lk_key, .lk_bucket_a(lk_a), .lk_bucket_b(lk_b), .lk_sig,
    .idx_req_valid, .idx_req_a, .idx_req_b, .idx_rsp_valid, .idx_rsp_a, .idx_rsp_b,
    .rec_req_valid, .rec_req_index, .rec_req_tag, .rec_rsp_valid, .rec_rsp_tag, .rec_rsp_data, .rec_rsp_ext,
    .res_room(res_level < (SMALL - 4)), .res_push, .res(res_in));
  sl_fifo #(.W($bits(res_in)), .DEPTH(SMALL), .RAM(1'b0)) u_res (
    .clk, .rst, .push(res_push), .din(res_in), .pop(sack_pop), .valid(res_valid), .dout(res_head),
    .level(res_level));

  // ---- Action ----
  cnt_t cnt;
  logic act_push, act_valid, act_pop;
  act_t act_in, act_head;
  slvl_t act_level;
  sl_action u_action (
    .clk, .rst, .cfg, .status,
    .meta_valid, .meta(meta_head), .res_valid, .res(res_head), .sack_valid, .sack(sack_head),
    .pop(sack_pop),
    .nh_we(tbl_we && tbl_sel && 32'(tbl_addr) < NNH), .nh_waddr(tbl_addr[$clog2(NNH)-1:0]),
    .nh_wdata(tbl_wdata[8*NEXT_HOP_ENTRY_BYTES-1:0]),
    .act_room(act_level < (SMALL - 4)), .act_push, .act(act_in),
    .upd_valid, .upd_record, .upd_reply, .upd_flags, .upd_last_seen, .upd_teardown, .upd_count,
    .upd_bytes, .ev_valid, .ev_cause, .ev_record, .ev_cookie, .cnt);
  sl_fifo #(.W($bits(act_in)), .DEPTH(SMALL)) u_act (
    .clk, .rst, .push(act_push), .din(act_in), .pop(act_pop), .valid(act_valid), .dout(act_head),
    .level(act_level));

  // ---- Emit ----
  sl_emit u_emit (
    .clk, .rst, .act_valid, .act(act_head), .act_pop, .buf_valid, .buf_dout, .buf_pop,
    .tx_valid, .tx_ready, .tx_data, .tx_keep, .tx_last, .tx_port,
    .pt_valid, .pt_ready, .pt_data, .pt_keep, .pt_last, .pt_desc, .drop_valid, .drop_reason);

  assign idle = ingress_idle && buf_level == 0 && !p_valid && !tx_valid && !pt_valid && !drop_valid;
endmodule
