// The action stage: joins each packet's metadata, lookup result and option walk (SACK edges,
// timestamp options), and decides, in the order of the model's Device::receive and Device::hit:
//   ingress port down, datapath disabled, the parser's drop or punt; on a lookup: miss, or a
//   hit (TCP flags OR and last_seen always; FIN/RST: teardown, flow event, punt unless
//   PUNT.HIT_ACTION forwards; SYN; TTL <= 1; next hop not valid; over the egress MTU; egress
//   port down) and otherwise the rewrite, sent with the record's counters updated.
// A punt is steered (REASON_QUEUE, the LIP filter's port slice, RETA) and dropped when its
// queue is not enabled, its buffer too small or its ring full, as the exception DMA writer
// would. Three stages: A0 joins and reads the next-hop table (on-chip RAM), A1 decides, A2
// builds the rewrite or the exception descriptor for the emit stage.
module sl_action
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
(
  input  logic                    clk,
  input  logic                    rst,
  input  cfg_t                    cfg,
  input  status_t                 status,
  // The three per-packet queues' heads.
  input  logic                    meta_valid,
  input  meta_t                   meta,
  input  logic                    res_valid,
  input  result_t                 res,
  input  logic                    sack_valid,
  input  logic [2*OPT_BYTES-1:0]  sack,       // {timestamp option starts, SACK edges}
  output logic                    pop,
  // The next-hop table's write port (the command engine's, the testbench's here).
  input  logic                    nh_we,
  input  logic [$clog2(NNH)-1:0]  nh_waddr,
  input  logic [8*NEXT_HOP_ENTRY_BYTES-1:0] nh_wdata,
  // To the emit stage.
  input  logic                    act_room,
  output logic                    act_push,
  output act_t                    act,
  // Record write-back: the table memory's update port.
  output logic                    upd_valid,
  output logic [31:0]             upd_record,
  output logic                    upd_reply,
  output logic [7:0]              upd_flags,
  output logic [31:0]             upd_last_seen,
  output logic                    upd_teardown,
  output logic                    upd_count,
  output logic [15:0]             upd_bytes,
  // Flow-info events (to the event writer).
  output logic                    ev_valid,
  output logic [7:0]              ev_cause,
  output logic [31:0]             ev_record,
  output logic [31:0]             ev_cookie,
  // Counters.
  output cnt_t                    cnt
);
  localparam int unsigned NHB = 8 * NEXT_HOP_ENTRY_BYTES;

  // ---- A0 ----
  logic [NHB-1:0] nh_mem [NNH];
  logic [NHB-1:0] nh_q;
  logic a1_valid;
  meta_t a1_m;
  result_t a1_r;
  logic [2*OPT_BYTES-1:0] a1_sack;

  assign pop = meta_valid && res_valid && sack_valid && act_room;

  always_ff @(posedge clk) begin
    if (nh_we) nh_mem[nh_waddr] <= nh_wdata;
    nh_q <= nh_mem[res.next_hop[$clog2(NNH)-1:0]];
    a1_valid <= rst ? 1'b0 : pop;
    a1_m <= meta;
    a1_r <= res;
    a1_sack <= sack;
  end

  // ---- A1 ----
  logic [1:0] kind;
  logic [7:0] reason;
  logic [31:0] queue;
  logic hit, tx_ok;
  logic [2:0] egress;
  cnt_t c;

  always_comb begin
    logic nh_ok, punt, fin_rst, rst_flag, forward;
    logic [15:0] nh_ctl;
    logic [31:0] rq, mtu;
    kind = A_DROP;
    rq = '0;
    reason = '0;
    queue = '0;
    hit = 1'b0;
    tx_ok = 1'b0;
    punt = 1'b0;
    c = '0;
    c.valid = a1_valid;
    c.port = a1_m.port;
    c.port_ok = 32'(a1_m.port) < NPORTS;
    c.rx_bytes = a1_m.frame_len;
    nh_ctl = nh_q[8*NEXT_HOP_ENTRY_CTL_VALID_OFFSET +: 16];
    egress = nh_ctl[NEXT_HOP_ENTRY_CTL_PORT_LSB +: 3];
    nh_ok = 32'(a1_r.next_hop) < status.next_hops && nh_ctl[NEXT_HOP_ENTRY_CTL_VALID_LSB]
            && nh_ctl[NEXT_HOP_ENTRY_CTL_PORT_LSB +: 8] < 8'(NPORTS);
    mtu = cfg.port_mtu[32*egress +: 32];
    fin_rst = (a1_m.tcp_flags & (TCP_FIN | TCP_RST)) != 0;
    rst_flag = (a1_m.tcp_flags & TCP_RST) != 0;
    forward = rst_flag ? cfg.rst_forward : cfg.fin_forward;
    if (!c.port_ok) begin
      reason = DROP_REASON_PORT_DOWN;
    end else if (!cfg.port_enable[a1_m.port]) begin
      reason = DROP_REASON_PORT_DOWN;
      c.port_drop = 1'b1; c.port_drop_port = a1_m.port;
    end else if (!cfg.enable) begin
      reason = DROP_REASON_DISABLED;
    end else if (a1_m.kind == K_DROP) begin
      reason = a1_m.reason;
    end else if (a1_m.kind == K_PUNT) begin
      punt = 1'b1; reason = a1_m.reason;
    end else if (!a1_r.hit) begin
      c.miss = 1'b1;
      punt = 1'b1; reason = PUNT_REASON_MISS;
    end else begin
      c.hit = 1'b1;
      hit = 1'b1;
      if (fin_rst && !forward) begin
        punt = 1'b1; reason = rst_flag ? PUNT_REASON_TCP_RST : PUNT_REASON_TCP_FIN;
      end else if (!fin_rst && (a1_m.tcp_flags & TCP_SYN) != 0) begin
        punt = 1'b1; reason = PUNT_REASON_TCP_SYN;
      end else if (a1_m.ttl <= 8'd1) begin
        punt = 1'b1; reason = PUNT_REASON_TTL_EXPIRED;
      end else if (!nh_ok) begin
        punt = 1'b1; reason = PUNT_REASON_NO_NEXT_HOP;
      end else if ({16'd0, a1_m.ip_len} > mtu) begin
        punt = 1'b1; reason = PUNT_REASON_OVER_MTU;
      end else if (!(cfg.port_enable[egress] && status.link_up[egress])) begin
        reason = DROP_REASON_PORT_DOWN;
        c.port_drop = 1'b1; c.port_drop_port = egress;
      end else begin
        kind = A_TX;
        tx_ok = 1'b1;
      end
    end
    if (punt) begin
      // Steering: a fixed queue for the reason, else the LIP's port slice, else RETA.
      rq = cfg.reason_queue[32*reason[3:0] +: 32];
      if (rq != 32'hFF) queue = rq;
      else if (a1_m.l3_off != 0 && a1_m.to_lip) queue = {16'd0, a1_m.dport} & cfg.lport_mask;
      else queue = cfg.reta[32*a1_m.steer[5:0] +: 32];
      if (queue >= cfg.queues || queue >= NQUEUES || !cfg.ring_enable[queue[3:0]]) begin
        reason = DROP_REASON_QUEUE_DISABLED;
        c.ring_drop = queue < NQUEUES;
      end else if ({16'd0, a1_m.frame_len} > cfg.ring_buf_size[32*queue[3:0] +: 32]) begin
        reason = DROP_REASON_EXCEPTION_TOO_BIG;
      end else if (status.ring_full[queue[3:0]]) begin
        reason = DROP_REASON_EXCEPTION_RING_FULL;
        c.ring_drop = 1'b1;
      end else begin
        kind = A_PUNT;
      end
      c.ring_q = queue[3:0];
    end
    c.reason = reason;
    c.punt = a1_valid && kind == A_PUNT;
    c.drop = a1_valid && kind == A_DROP;
    c.tx = a1_valid && kind == A_TX;
    c.tx_port = egress;
    c.tx_bytes = a1_m.ip_len + (nh_ctl[NEXT_HOP_ENTRY_CTL_VLAN_LSB] ? 16'd18 : 16'd14);
  end

  logic a2_valid;
  meta_t a2_m;
  result_t a2_r;
  logic [2*OPT_BYTES-1:0] a2_sack;
  logic [NHB-1:0] a2_nh;
  logic [1:0] a2_kind;
  logic [7:0] a2_reason;
  logic [31:0] a2_queue;
  logic a2_hit;
  logic [2:0] a2_egress;
  logic [15:0] out_len;

  always_ff @(posedge clk) begin
    a2_valid <= rst ? 1'b0 : a1_valid;
    a2_m <= a1_m;
    a2_r <= a1_r;
    a2_sack <= a1_sack;
    a2_nh <= nh_q;
    a2_kind <= kind;
    a2_reason <= reason;
    a2_queue <= queue;
    a2_hit <= hit;
    a2_egress <= egress;
    // Write-back, events and counters leave from A1's decision.
    upd_valid <= !rst && a1_valid && hit;
    upd_record <= a1_r.record;
    upd_reply <= a1_r.reply;
    upd_flags <= a1_m.tcp_flags;
    upd_last_seen <= status.now_ticks;
    upd_teardown <= (a1_m.tcp_flags & (TCP_FIN | TCP_RST)) != 0;
    upd_count <= tx_ok;
    upd_bytes <= a1_m.ip_len;
    ev_valid <= !rst && a1_valid && hit && (a1_m.tcp_flags & (TCP_FIN | TCP_RST)) != 0;
    ev_cause <= (a1_m.tcp_flags & TCP_RST) != 0 ? FLOW_CAUSE_RST : FLOW_CAUSE_FIN;
    ev_record <= a1_r.record;
    ev_cookie <= a1_r.cookie;
    cnt <= c;
    if (rst) cnt.valid <= 1'b0;
  end

  // ---- A2 ----
  sl_rewrite u_rewrite (
    .m(a2_m), .r(a2_r), .nh(a2_nh), .edges(a2_sack[OPT_BYTES-1:0]), .ts(a2_sack[2*OPT_BYTES-1:OPT_BYTES]),
    .edit_val(act.edit_val), .edit_mask(act.edit_mask), .l2(act.l2), .l2_len(act.l2_len),
    .out_len(out_len));

  always_comb begin
    logic [15:0] flags;
    logic [8*EXCEPTION_DESC_BYTES-1:0] d;
    act_push = a2_valid;
    act.kind = a2_kind;
    act.reason = a2_reason;
    act.port = a2_egress;
    act.in_beats = 11'((a2_m.frame_len + 16'd63) >> 6);
    act.out_len = out_len;
    act.shift = (a2_m.vlan == (act.l2_len == 5'd18)) ? 2'd0 : a2_m.vlan ? 2'd1 : 2'd2;
    flags = '0;
    flags[EXCEPTION_DESC_FLAGS_HIT_LSB] = a2_hit;
    flags[EXCEPTION_DESC_FLAGS_REPLY_LSB] = a2_hit && a2_r.reply;
    flags[EXCEPTION_DESC_FLAGS_VLAN_LSB] = a2_m.vlan;
    flags[EXCEPTION_DESC_FLAGS_IPV6_LSB] = a2_m.ipv6;
    d = '0;
    d[8*EXCEPTION_DESC_LENGTH_OFFSET +: 16] = a2_m.frame_len;
    d[8*EXCEPTION_DESC_REASON_OFFSET +: 8] = a2_reason;
    d[8*EXCEPTION_DESC_PORT_OFFSET +: 8] = {5'd0, a2_m.port};
    d[8*EXCEPTION_DESC_FLAGS_PHASE_OFFSET +: 16] = flags;
    d[8*EXCEPTION_DESC_VLAN_TCI_OFFSET +: 16] = a2_m.vlan_tci;
    d[8*EXCEPTION_DESC_HASH_OFFSET +: 32] = a2_m.steer;
    d[8*EXCEPTION_DESC_RECORD_OFFSET +: 32] = a2_hit ? a2_r.record : 32'd0;
    d[8*EXCEPTION_DESC_TIMESTAMP_OFFSET +: 64] = status.now_ns;
    d[8*EXCEPTION_DESC_L3_OFFSET_OFFSET +: 8] = a2_m.l3_off;
    d[8*EXCEPTION_DESC_L4_OFFSET_OFFSET +: 8] = a2_m.l4_off;
    d[8*EXCEPTION_DESC_QUEUE_OFFSET +: 8] = a2_queue[7:0];
    d[8*EXCEPTION_DESC_COOKIE_OFFSET +: 32] = a2_hit ? a2_r.cookie : 32'd0;
    act.desc = d;
  end
endmodule
