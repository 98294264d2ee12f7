// The flow lookup: two-choice bucketized cuckoo index, stash, record compare (rtl_spec::hash's
// "Index placement" and the model's FlowTable::lookup), against a table memory with a fixed
// read latency of many cycles. One request per cycle, in order, with every request of the
// latency window in flight:
//
//   L1  issue the reads of bucket A and bucket B (two index read ports)    ctx1 FIFO
//       ... index read latency: responses queue in the index response FIFO
//   L2  candidates: valid slots of A, B (in slot order) and the stash whose signature is the
//       key's and whose record is in range; read the first one's record     ctx2 FIFO
//       ... record read latency: responses (the record and, read beside it at the same index,
//       its extension word) queue in the record response FIFO
//   L3  compare the record with the key; on a match, a hit. A signature that matched another
//       key's record (1 lookup in ~10^4 at full load) re-reads the next candidate on the
//       same port with tag 1 and holds L3 until it returns: rare, and in order.
//
// Every packet passes, lookups or not (a packet that is not looked up is a bubble), so results
// leave in packet order. Credits keep each response FIFO from overflowing: a read is issued
// only when its response has a place to land, so the memory never has to wait.
module sl_lookup
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
#(
  parameter int unsigned DEPTH = 512   // reads in flight per memory stage, at least the latency
) (
  input  logic                    clk,
  input  logic                    rst,
  input  logic [31:0]             records,
  input  logic [64*NSTASH-1:0]    stash,
  // Requests (a first-word-fall-through FIFO's head).
  input  logic                    lk_valid,
  output logic                    lk_pop,
  input  logic                    lk_lookup,
  input  logic [8*KEY_BYTES-1:0]  lk_key,
  input  logic [31:0]             lk_bucket_a,
  input  logic [31:0]             lk_bucket_b,
  input  logic [15:0]             lk_sig,
  // Index memory: two reads per cycle, responses LAT cycles later, in order.
  output logic                    idx_req_valid,
  output logic [31:0]             idx_req_a,
  output logic [31:0]             idx_req_b,
  input  logic                    idx_rsp_valid,
  input  logic [8*INDEX_BUCKET_BYTES-1:0] idx_rsp_a,
  input  logic [8*INDEX_BUCKET_BYTES-1:0] idx_rsp_b,
  // Record memory: one read per cycle, responses LAT cycles later, in order, tag echoed.
  output logic                    rec_req_valid,
  output logic [31:0]             rec_req_index,
  output logic                    rec_req_tag,
  input  logic                    rec_rsp_valid,
  input  logic                    rec_rsp_tag,
  input  logic [8*FLOW_RECORD_BYTES-1:0] rec_rsp_data,
  // The record's extension word (spec 1.4), read beside it at the same index.
  input  logic [8*RECORD_EXT_BYTES-1:0] rec_rsp_ext,
  // Results, in request order.
  input  logic                    res_room,
  output logic                    res_push,
  output result_t                 res
);
  localparam int unsigned IB = 8 * INDEX_BUCKET_BYTES;
  localparam int unsigned RB = 8 * FLOW_RECORD_BYTES;
  localparam int unsigned EB = 8 * RECORD_EXT_BYTES;
  typedef logic [$clog2(DEPTH+3):0] lvl_t;

  // A candidate: a record index and the direction its slot names.
  typedef struct packed {
    logic        valid;
    logic [31:0] record;
    logic        reply;
  } cand_t;

  function automatic logic [33:0] slot_cand(input logic [63:0] slot, input logic [15:0] sig, input logic [31:0] nrec);
    logic [31:0] word, record;
    word = slot[8*INDEX_SLOT_WORD_SIG_OFFSET +: 32];
    record = slot[8*INDEX_SLOT_RECORD_OFFSET +: 32];
    // A cand_t: {valid, record, reply}.
    slot_cand = {word[INDEX_SLOT_WORD_VALID_LSB] && word[INDEX_SLOT_WORD_SIG_LSB +: 16] == sig && record < nrec,
                 record, word[INDEX_SLOT_WORD_REPLY_LSB]};
  endfunction

  typedef struct packed {
    logic                   lookup;
    logic [8*KEY_BYTES-1:0] key;
    logic [15:0]            sig;
  } ctx1_t;

  typedef struct packed {
    logic                   lookup;
    logic [8*KEY_BYTES-1:0] key;
    logic [15:0]            sig;
    logic                   read;      // a record read was issued for cand
    cand_t                  cand;
    logic [NCAND-1:0]       rest;      // candidates after it
    logic [2*IB-1:0]        buckets;   // A and B, for the rare second read
  } ctx2_t;

  // ---- L1 ----
  lvl_t idx_inflight;
  logic ctx1_valid, ctx1_pop, idx_pop;
  ctx1_t ctx1_in, ctx1_head;
  lvl_t ctx1_level;
  logic idx_fifo_valid;
  logic [2*IB-1:0] idx_fifo_head;
  lvl_t idx_fifo_level;

  assign lk_pop = lk_valid && ctx1_level < (DEPTH - 1) && (!lk_lookup || idx_inflight < (DEPTH - 1));
  assign idx_req_valid = lk_pop && lk_lookup;
  assign idx_req_a = lk_bucket_a;
  assign idx_req_b = lk_bucket_b;
  assign ctx1_in = {lk_lookup, lk_key, lk_sig};

  sl_fifo #(.W($bits(ctx1_in)), .DEPTH(DEPTH)) u_ctx1 (
    .clk, .rst, .push(lk_pop), .din(ctx1_in), .pop(ctx1_pop),
    .valid(ctx1_valid), .dout(ctx1_head), .level(ctx1_level));
  sl_fifo #(.W(2 * IB), .DEPTH(DEPTH)) u_idx_rsp (
    .clk, .rst, .push(idx_rsp_valid), .din({idx_rsp_b, idx_rsp_a}), .pop(idx_pop),
    .valid(idx_fifo_valid), .dout(idx_fifo_head), .level(idx_fifo_level));

  always_ff @(posedge clk) begin
    if (rst) idx_inflight <= '0;
    else idx_inflight <= idx_inflight + (idx_req_valid) - (idx_pop);
  end

  // ---- L2 ----
  lvl_t rec_inflight;
  logic [NCAND-1:0] cmask;
  logic [34*NCAND-1:0] cands;   // cand_t i in [34i +: 34] (Yosys 0.23 takes no arrays of structs)
  cand_t first;
  logic [NCAND-1:0] after_first;
  ctx2_t ctx2_in, ctx2_head;
  logic ctx2_valid, ctx2_pop, rec_pop, retry_issue, l2_read;
  lvl_t ctx2_level;
  logic rec_fifo_valid;
  logic [RB-1:0] rec_fifo_head;
  logic [EB-1:0] ext_fifo_head;
  lvl_t rec_fifo_level;

  always_comb begin
    for (int i = 0; i < SLOTS; i++) begin
      cands[34*i +: 34] = slot_cand(idx_fifo_head[64*i +: 64], ctx1_head.sig, records);
      cands[34*(SLOTS + i) +: 34] = slot_cand(idx_fifo_head[IB + 64*i +: 64], ctx1_head.sig, records);
    end
    for (int i = 0; i < NSTASH; i++) cands[34*(2*SLOTS + i) +: 34] = slot_cand(stash[64*i +: 64], ctx1_head.sig, records);
    for (int i = 0; i < NCAND; i++) cmask[i] = cands[34*i + 33] && ctx1_head.lookup;
    first = '0;
    after_first = '0;
    for (int i = NCAND - 1; i >= 0; i--) begin
      if (cmask[i]) begin
        first = cands[34*i +: 34];
        after_first = cmask & ~((NCAND'(1) << (i + 1)) - NCAND'(1));
      end
    end
  end

  assign l2_read = first.valid;
  assign ctx1_pop = ctx1_valid && (!ctx1_head.lookup || idx_fifo_valid) && ctx2_level < (DEPTH - 1)
                    && (!l2_read || (rec_inflight < (DEPTH - 1) && !retry_issue));
  assign idx_pop = ctx1_pop && ctx1_head.lookup;

  always_comb begin
    ctx2_in.lookup = ctx1_head.lookup;
    ctx2_in.key = ctx1_head.key;
    ctx2_in.sig = ctx1_head.sig;
    ctx2_in.read = l2_read;
    ctx2_in.cand = first;
    ctx2_in.rest = after_first;
    ctx2_in.buckets = idx_fifo_head;
  end

  sl_fifo #(.W($bits(ctx2_in)), .DEPTH(DEPTH)) u_ctx2 (
    .clk, .rst, .push(ctx1_pop), .din(ctx2_in), .pop(ctx2_pop),
    .valid(ctx2_valid), .dout(ctx2_head), .level(ctx2_level));
  sl_fifo #(.W(EB + RB), .DEPTH(DEPTH)) u_rec_rsp (
    .clk, .rst, .push(rec_rsp_valid && !rec_rsp_tag), .din({rec_rsp_ext, rec_rsp_data}), .pop(rec_pop),
    .valid(rec_fifo_valid), .dout({ext_fifo_head, rec_fifo_head}), .level(rec_fifo_level));

  // ---- L3 ----
  typedef enum logic [1:0] { S_HEAD, S_ISSUE, S_WAIT } state_t;
  state_t state;
  logic [NCAND-1:0] retry_rest;
  cand_t retry_cand, next_cand;
  logic [NCAND-1:0] next_rest;
  logic retry_valid;
  logic [RB-1:0] retry_data;
  logic [EB-1:0] retry_ext;

  // The record `r` holds the key in direction `reply`.
  function automatic logic key_matches(input logic [RB-1:0] r, input logic [8*KEY_BYTES-1:0] k, input logic reply);
    logic [31:0] ctl;
    logic [8*FLOW_TUPLE_BYTES-1:0] t;
    ctl = r[8*FLOW_RECORD_CTL_VALID_OFFSET +: 32];
    t = reply ? r[8*FLOW_RECORD_REPLY_SRC_ADDR_OFFSET +: 8*FLOW_TUPLE_BYTES]
              : r[8*FLOW_RECORD_ORIG_SRC_ADDR_OFFSET +: 8*FLOW_TUPLE_BYTES];
    key_matches = ctl[FLOW_RECORD_CTL_VALID_LSB] && t == k[8*LOOKUP_KEY_TUPLE_SRC_ADDR_OFFSET +: 8*FLOW_TUPLE_BYTES]
           && ctl[FLOW_RECORD_CTL_PROTO_LSB +: 8] == k[8*LOOKUP_KEY_PROTO_OFFSET +: 8]
           && (ctl[FLOW_RECORD_CTL_IPV6_LSB] ? 8'd6 : 8'd4) == k[8*LOOKUP_KEY_FAMILY_OFFSET +: 8];
  endfunction

  // A result_t, field by field in its declaration order.
  function automatic result_t hit_result(input logic [RB-1:0] r, input logic [EB-1:0] ext, input logic [31:0] record,
                                        input logic reply);
    logic [31:0] ctl;
    ctl = r[8*FLOW_RECORD_CTL_VALID_OFFSET +: 32];
    hit_result = {
      1'b1, reply, record,
      r[8*FLOW_RECORD_COOKIE_OFFSET +: 32],
      ctl[FLOW_RECORD_CTL_SEQ_ADJUST_LSB],
      r[8*FLOW_RECORD_SEQ_DELTA_OFFSET +: 32],
      ext[8*RECORD_EXT_TS_DELTA_OFFSET +: 32],
      reply ? r[8*FLOW_RECORD_ORIG_SRC_ADDR_OFFSET +: 8*FLOW_TUPLE_BYTES]
            : r[8*FLOW_RECORD_REPLY_SRC_ADDR_OFFSET +: 8*FLOW_TUPLE_BYTES],
      reply ? r[8*FLOW_RECORD_DIR_REPLY_NEXT_HOP_OFFSET +: 16] : r[8*FLOW_RECORD_DIR_ORIG_NEXT_HOP_OFFSET +: 16],
      reply ? r[8*FLOW_RECORD_DIR_REPLY_L3_DELTA_OFFSET +: 16] : r[8*FLOW_RECORD_DIR_ORIG_L3_DELTA_OFFSET +: 16],
      reply ? r[8*FLOW_RECORD_DIR_REPLY_L4_DELTA_OFFSET +: 16] : r[8*FLOW_RECORD_DIR_ORIG_L4_DELTA_OFFSET +: 16]};
  endfunction

  // The first candidate left in `mask`, taken from the context's buckets or the stash.
  always_comb begin
    next_cand = '0;
    next_rest = '0;
    for (int i = NCAND - 1; i >= 0; i--) begin
      if (retry_rest[i]) begin
        if (i < SLOTS) next_cand = slot_cand(ctx2_head.buckets[64*i +: 64], ctx2_head.sig, records);
        else if (i < 2 * SLOTS) next_cand = slot_cand(ctx2_head.buckets[IB + 64*(i-SLOTS) +: 64], ctx2_head.sig, records);
        else next_cand = slot_cand(stash[64*(i-2*SLOTS) +: 64], ctx2_head.sig, records);
        next_rest = retry_rest & ~((NCAND'(1) << (i + 1)) - NCAND'(1));
      end
    end
  end

  logic head_ready, head_match, retry_match;
  result_t head_res, retry_res;
  assign head_res = hit_result(rec_fifo_head, ext_fifo_head, ctx2_head.cand.record, ctx2_head.cand.reply);
  assign retry_res = hit_result(retry_data, retry_ext, retry_cand.record, retry_cand.reply);
  assign head_ready = ctx2_valid && (!ctx2_head.read || rec_fifo_valid) && res_room;
  assign head_match = ctx2_head.read && key_matches(rec_fifo_head, ctx2_head.key, ctx2_head.cand.reply);
  assign retry_match = key_matches(retry_data, ctx2_head.key, retry_cand.reply);
  assign retry_issue = state == S_ISSUE;

  always_comb begin
    ctx2_pop = 1'b0;
    rec_pop = 1'b0;
    res_push = 1'b0;
    res = '0;
    rec_req_valid = 1'b0;
    rec_req_index = first.record;
    rec_req_tag = 1'b0;
    case (state)
      S_HEAD: begin
        if (head_ready) begin
          rec_pop = ctx2_head.read;
          if (head_match) begin
            res = head_res;
            res_push = 1'b1; ctx2_pop = 1'b1;
          end else if (!ctx2_head.read || ctx2_head.rest == '0) begin
            res_push = 1'b1; ctx2_pop = 1'b1;   // a miss, or no lookup
          end
        end
      end
      S_ISSUE: begin
        rec_req_valid = 1'b1;
        rec_req_index = next_cand.record;
        rec_req_tag = 1'b1;
      end
      S_WAIT: begin
        if (retry_valid) begin
          if (retry_match) begin
            res = retry_res;
            res_push = 1'b1; ctx2_pop = 1'b1;
          end else if (retry_rest == '0) begin
            res_push = 1'b1; ctx2_pop = 1'b1;
          end
        end
      end
      default: ;
    endcase
    if (state != S_ISSUE && ctx1_pop && l2_read) begin
      rec_req_valid = 1'b1;
      rec_req_index = first.record;
    end
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      state <= S_HEAD;
      rec_inflight <= '0;
      retry_valid <= 1'b0;
    end else begin
      rec_inflight <= rec_inflight + (rec_req_valid && !rec_req_tag) - (rec_pop);
      if (rec_rsp_valid && rec_rsp_tag) begin
        retry_valid <= 1'b1;
        retry_data <= rec_rsp_data;
        retry_ext <= rec_rsp_ext;
      end
      case (state)
        S_HEAD: if (head_ready && ctx2_head.read && !head_match && ctx2_head.rest != '0) begin
          retry_rest <= ctx2_head.rest;
          state <= S_ISSUE;
        end
        S_ISSUE: begin
          retry_cand <= next_cand;
          retry_rest <= next_rest;
          retry_valid <= 1'b0;
          state <= S_WAIT;
        end
        S_WAIT: if (retry_valid) begin
          retry_valid <= 1'b0;
          state <= (retry_match || retry_rest == '0) ? S_HEAD : S_ISSUE;
        end
        default: state <= S_HEAD;
      endcase
    end
  end

`ifndef SYNTHESIS
  logic unused;
  assign unused = ^{idx_fifo_level, rec_fifo_level};
`endif
endmodule
