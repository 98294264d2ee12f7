// The FullNAT rewrite of a hit, as edits to the first two beats of the frame plus a new L2
// header (the model's build_hit_output, bit for bit): source := the other tuple's destination,
// destination := its source, TTL or hop limit - 1, the IPv4 header checksum and the TCP/UDP
// checksum updated from the record's RFC 1624 deltas (never recomputed from the payload), and
// with `seq_adjust` the sequence number and every timestamp option's TSval (reply) or the
// acknowledgement number, every SACK edge and every timestamp option's TSecr (original)
// translated, each change folded into the TCP checksum. A `ts_delta` of 0 touches no timestamp
// option (not even the checksum's 0xFFFF/0x0000 representation). Combinational; the action
// stage registers around it.
//
// Edits are built where the fields sit in an untagged IPv4 frame (IP at 14, TCP/UDP at 34) and
// then moved: 20 bytes on for IPv6's longer header, 4 more for an input 802.1Q tag.
module sl_rewrite
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
(
  input  meta_t                         m,
  input  result_t                       r,
  input  logic [8*NEXT_HOP_ENTRY_BYTES-1:0] nh,
  input  logic [OPT_BYTES-1:0]          edges,      // SACK edges start here (sl_sack)
  input  logic [OPT_BYTES-1:0]          ts,         // timestamp options start here (sl_sack)
  output logic [8*WIN_BYTES-1:0]        edit_val,   // new bytes, in input frame positions
  output logic [WIN_BYTES-1:0]          edit_mask,  // which bytes are new
  output logic [8*18-1:0]               l2,         // the new L2 header
  output logic [4:0]                    l2_len,     // 14 or 18
  output logic [15:0]                   out_len     // bytes sent
);
  localparam int unsigned IP = 14, L4 = 34;

  logic [127:0] new_src, new_dst;
  logic [15:0] new_sport, new_dport;
  logic [8*WIN_BYTES-1:0] v3, v4;     // L3 edits (IP at 14), L4 edits (L4 at 34)
  logic [WIN_BYTES-1:0] m3, m4;

  // The other tuple, reversed (addresses and ports stay in wire order).
  assign new_src = r.other[8*FLOW_TUPLE_DST_ADDR_OFFSET +: 128];
  assign new_dst = r.other[8*FLOW_TUPLE_SRC_ADDR_OFFSET +: 128];
  assign new_sport = r.other[8*FLOW_TUPLE_DST_PORT_OFFSET +: 16];
  assign new_dport = r.other[8*FLOW_TUPLE_SRC_PORT_OFFSET +: 16];

  // Writes `n` bytes of `val` (wire order) at `at` into v and marks them in mk (a macro: the
  // functions of Yosys 0.23 cannot update their caller's variables). Uses `tmp`.
`define SL_PUT(v, mk, at, n, val) \
    tmp = (val); \
    for (int k_ = 0; k_ < (n); k_++) begin \
      v[8*((at)+k_) +: 8] = tmp[8*k_ +: 8]; \
      mk[(at)+k_] = 1'b1; \
    end

  // A 16- or 32-bit number written in network order.
  function automatic logic [127:0] net16(input logic [15:0] x);
    net16 = {112'd0, x[7:0], x[15:8]};
  endfunction
  function automatic logic [127:0] net32(input logic [31:0] x);
    net32 = {96'd0, x[7:0], x[15:8], x[23:16], x[31:24]};
  endfunction

  always_comb begin
    logic [23:0] sum;
    logic [31:0] v, d, seq_new, ack_new, old_edge, new_edge;
    logic [15:0] csum;
    logic [127:0] tmp;
    logic [24*64-1:0] terms;   // per option position, then the tree's partial sums
    logic [OPT_BYTES-1:0] tsval, tsecr;   // where a translated TSval or TSecr starts
    logic ts_on;
    v3 = '0; m3 = '0; v4 = '0; m4 = '0;
    sum = '0; v = '0; tmp = '0; terms = '0; csum = '0; old_edge = '0; new_edge = '0;
    seq_new = m.seq + r.seq_delta;
    ack_new = m.ack - r.seq_delta;
    d = r.seq_delta;
    // TSval is at option bytes 2..6, TSecr at 6..10; only a non-zero delta changes either.
    ts_on = r.seq_adjust && r.ts_delta != 32'd0;
    tsval = (ts_on && r.reply) ? ts << 2 : '0;
    tsecr = (ts_on && !r.reply) ? ts << 6 : '0;
    // L3.
    if (m.ipv6) begin
      `SL_PUT(v3, m3, IP + IP6_HOP, 1, {120'd0, m.ttl - 8'd1});
      `SL_PUT(v3, m3, IP + IP6_SRC, 16, new_src);
      `SL_PUT(v3, m3, IP + IP6_DST, 16, new_dst);
    end else begin
      `SL_PUT(v3, m3, IP + IP4_TTL, 1, {120'd0, m.ttl - 8'd1});
      sum = {8'd0, ~m.ip_csum} + {8'd0, r.l3_delta} + {8'd0, CHECKSUM_TTL_DECREMENT_DELTA};
      `SL_PUT(v3, m3, IP + IP4_CSUM, 2, net16(~fold(sum)));
      `SL_PUT(v3, m3, IP + IP4_SRC, 4, {96'd0, new_src[31:0]});
      `SL_PUT(v3, m3, IP + IP4_DST, 4, {96'd0, new_dst[31:0]});
    end
    // L4 (positions for IPv4; IPv6 moves them below).
    `SL_PUT(v4, m4, L4 + L4_SPORT, 2, {112'd0, new_sport});
    `SL_PUT(v4, m4, L4 + L4_DPORT, 2, {112'd0, new_dport});
    if (m.udp) begin
      sum = {8'd0, ~m.l4_csum} + {8'd0, r.l4_delta};
      csum = ~fold(sum);
      if (!m.ipv6 && m.l4_csum == 16'd0) csum = 16'd0;      // "no checksum" stays so
      else if (csum == 16'd0) csum = 16'hFFFF;              // a computed 0 is sent as 0xFFFF
      `SL_PUT(v4, m4, L4 + UDPH_CSUM, 2, net16(csum));
    end else begin
      sum = {8'd0, ~m.l4_csum} + {8'd0, r.l4_delta};
      if (r.seq_adjust && r.reply) begin
        sum = sum + {6'd0, field_delta32(m.seq, seq_new)};
        `SL_PUT(v4, m4, L4 + TCPH_SEQ, 4, net32(seq_new));
      end
      if (r.seq_adjust && !r.reply) begin
        sum = sum + {6'd0, field_delta32(m.ack, ack_new)};
        `SL_PUT(v4, m4, L4 + TCPH_ACK, 4, net32(ack_new));
      end
      if (r.seq_adjust) begin
        // The 32-bit option fields to translate (SACK edges and TSecr in the original
        // direction, TSval in the reply one: the options they sit in never overlap), each
        // field's words summed in a tree, not a chain: 37 positions deep otherwise.
        terms = '0;
        for (int p = 0; p + 4 <= OPT_BYTES; p++) begin
          if ((edges[p] && !r.reply) || tsval[p] || tsecr[p]) begin
            old_edge = {m.opts[8*p +: 8], m.opts[8*(p+1) +: 8], m.opts[8*(p+2) +: 8], m.opts[8*(p+3) +: 8]};
            if (tsval[p]) new_edge = old_edge + r.ts_delta;
            else if (tsecr[p]) new_edge = old_edge - r.ts_delta;
            else new_edge = old_edge - d;
            terms[24*p +: 24] = {6'd0, field_delta32(old_edge, new_edge)};
            `SL_PUT(v4, m4, L4 + TCPH_LEN + p, 4, net32(new_edge));
          end
        end
        for (int w = 32; w >= 1; w = w / 2)
          for (int i = 0; i < w; i++) terms[24*i +: 24] = terms[24*(2*i) +: 24] + terms[24*(2*i+1) +: 24];
        sum = sum + terms[23:0];
      end
      `SL_PUT(v4, m4, L4 + TCPH_CSUM, 2, net16(~fold(sum)));
    end
    if (m.ipv6) begin
      v4 = v4 << (8 * 20);
      m4 = m4 << 20;
    end
    edit_val = v3 | v4;   // untouched bytes are 0 in both
    edit_mask = m3 | m4;
    if (m.vlan) begin
      edit_val = edit_val << 32;
      edit_mask = edit_mask << 4;
    end
    // L2 from the next-hop entry.
    l2 = '0;
    l2[0 +: 96] = nh[8*NEXT_HOP_ENTRY_DST_MAC_OFFSET +: 96];      // destination and source MAC
    v = {16'd0, nh[8*NEXT_HOP_ENTRY_CTL_VALID_OFFSET +: 16]};
    if (v[NEXT_HOP_ENTRY_CTL_VLAN_LSB]) begin
      l2[8*12 +: 16] = {ETHERTYPE_VLAN[7:0], ETHERTYPE_VLAN[15:8]};
      l2[8*14 +: 16] = nh[8*NEXT_HOP_ENTRY_VLAN_TCI_OFFSET +: 16];
      l2[8*16 +: 16] = m.ipv6 ? {ETHERTYPE_IPV6[7:0], ETHERTYPE_IPV6[15:8]} : {ETHERTYPE_IPV4[7:0], ETHERTYPE_IPV4[15:8]};
      l2_len = 5'd18;
    end else begin
      l2[8*12 +: 16] = m.ipv6 ? {ETHERTYPE_IPV6[7:0], ETHERTYPE_IPV6[15:8]} : {ETHERTYPE_IPV4[7:0], ETHERTYPE_IPV4[15:8]};
      l2_len = 5'd14;
    end
    out_len = m.ip_len + {11'd0, l2_len};
  end

endmodule
`undef SL_PUT
