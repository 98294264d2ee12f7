// The parser: classifies a frame from its header window and length as a lookup, a punt or a
// drop, with the reasons and in the order of the contract's datapath semantics (the same checks,
// in the same order, as sim-model/src/packet/parse.rs, so a frame wrong in two ways gets the same
// reason). It also builds the lookup key (LookupKey layout from sluice_spec_pkg) and the
// symmetric steering key, and captures the fields the rewrite edits. One frame per cycle, one
// register stage.
module sl_parse
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
(
  input  logic                   clk,
  input  logic                   rst,
  input  logic                   in_valid,
  input  logic [8*WIN_BYTES-1:0] in_win,
  input  logic [15:0]            in_len,
  input  logic [2:0]             in_port,
  output logic                   out_valid,
  output meta_t                  out_meta,
  output logic                   out_lookup,
  output logic [8*KEY_BYTES-1:0] out_key,
  output logic                   out_ip,       // the steering key is valid (an IP packet)
  output logic [8*KEY_BYTES-1:0] out_steer_key,
  output logic [127:0]           out_dst       // destination address, for the LIP filter
);
  meta_t m;
  logic lookup, ip;
  logic [8*KEY_BYTES-1:0] key, skey;
  logic [127:0] src, dst;

  // Decides `m`. The window is shifted so that the IP header always starts at 14 (`hv`) and the
  // transport header at 34 (`lv`, the IPv4 position): every field below is at a constant offset.
  always_comb begin
    logic [15:0] et, rest, total, hl, payload, l4_len, doff;
    logic [8*WIN_BYTES-1:0] hv, lv;
    logic decided, transport;
    logic [7:0] proto, next;
    m = '0;
    lookup = 1'b0;
    ip = 1'b0;
    src = '0;
    dst = '0;
    decided = 1'b0;
    transport = 1'b0;
    total = '0; hl = '0; payload = '0; l4_len = '0; doff = '0; proto = '0; next = '0;
    m.port = in_port;
    m.frame_len = in_len;
    et = be16(in_win, ETH_TYPE);
    hv = in_win;
    if (in_len < 16'd14) begin
      m.kind = K_DROP; m.reason = DROP_REASON_TRUNCATED; decided = 1'b1;
    end else if (et == ETHERTYPE_VLAN) begin
      if (in_len < 16'd18) begin
        m.kind = K_DROP; m.reason = DROP_REASON_TRUNCATED; decided = 1'b1;
      end else begin
        m.vlan = 1'b1;
        m.vlan_tci = be16(in_win, VLAN_TCI);
        et = be16(in_win, VLAN_TYPE);
        hv = in_win >> 32;
        // One tag only: stacked tags are the host's business.
        if (et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ) begin
          m.kind = K_PUNT; m.reason = PUNT_REASON_OTHER_L2; decided = 1'b1;
        end
      end
    end
    rest = in_len - (m.vlan ? 16'd18 : 16'd14);
    lv = hv;
    if (decided) begin
    end else if (et == ETHERTYPE_IPV4) begin
      total = be16(hv, 14 + IP4_TOTAL_LEN);
      hl = {10'd0, hv[8*(14+IP4_VER_IHL) +: 4], 2'b00};
      proto = hv[8*(14+IP4_PROTO) +: 8];
      if (rest < 16'd20) begin
        m.kind = K_DROP; m.reason = DROP_REASON_TRUNCATED;
      end else if (hv[8*(14+IP4_VER_IHL)+4 +: 4] != 4'd4 || hl < 16'd20 || total < hl || total > rest) begin
        m.kind = K_DROP; m.reason = DROP_REASON_BAD_L3_HEADER;
      end else begin
        ip = 1'b1;
        m.l3_off = m.vlan ? 8'd18 : 8'd14;
        m.ttl = hv[8*(14+IP4_TTL) +: 8];
        m.ip_len = total;
        m.ip_csum = be16(hv, 14 + IP4_CSUM);
        src[31:0] = hv[8*(14+IP4_SRC) +: 32];
        dst[31:0] = hv[8*(14+IP4_DST) +: 32];
        if ((be16(hv, 14 + IP4_FLAGS_FRAG) & 16'h3FFF) != 0) begin
          m.kind = K_PUNT; m.reason = PUNT_REASON_FRAGMENT;
        end else if (hl > 16'd20) begin
          m.kind = K_PUNT; m.reason = PUNT_REASON_IP_OPTIONS;
        end else if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) begin
          transport = 1'b1; l4_len = total - 16'd20;
        end else if (proto == IPPROTO_ICMP) begin
          m.kind = K_PUNT; m.reason = PUNT_REASON_ICMP;
        end else begin
          m.kind = K_PUNT; m.reason = PUNT_REASON_OTHER_L4;
        end
      end
    end else if (et == ETHERTYPE_IPV6) begin
      payload = be16(hv, 14 + IP6_PAYLOAD_LEN);
      next = hv[8*(14+IP6_NEXT) +: 8];
      proto = next;
      lv = hv >> (8 * 20);
      if (rest < 16'd40) begin
        m.kind = K_DROP; m.reason = DROP_REASON_TRUNCATED;
      end else if (hv[8*14+4 +: 4] != 4'd6 || payload > rest - 16'd40) begin
        m.kind = K_DROP; m.reason = DROP_REASON_BAD_L3_HEADER;
      end else begin
        ip = 1'b1;
        m.ipv6 = 1'b1;
        m.l3_off = m.vlan ? 8'd18 : 8'd14;
        m.ttl = hv[8*(14+IP6_HOP) +: 8];
        m.ip_len = payload + 16'd40;
        src = hv[8*(14+IP6_SRC) +: 128];
        dst = hv[8*(14+IP6_DST) +: 128];
        m.kind = K_PUNT;
        m.reason = PUNT_REASON_OTHER_L4;
        if (next == IPPROTO_TCP || next == IPPROTO_UDP) begin
          transport = 1'b1; l4_len = payload;
        end else if (next == IPPROTO_ICMPV6) m.reason = PUNT_REASON_ICMP;
        else if (next == IPPROTO_FRAGMENT) m.reason = PUNT_REASON_FRAGMENT;
        else begin
          for (int i = 0; i < IPV6_EXT_HEADER_COUNT; i++)
            if (next == IPV6_EXT_HEADERS[8*i +: 8]) m.reason = PUNT_REASON_IPV6_EXT;
        end
      end
    end else if (et == ETHERTYPE_ARP) begin
      m.kind = K_PUNT; m.reason = PUNT_REASON_ARP;
    end else begin
      m.kind = K_PUNT; m.reason = PUNT_REASON_OTHER_L2;
    end
    if (ip) m.udp = proto == IPPROTO_UDP;
    if (transport) begin
      doff = {10'd0, lv[8*(34+TCPH_DOFF)+4 +: 4], 2'b00};
      if (proto == IPPROTO_TCP && l4_len < 16'd20) begin
        m.kind = K_DROP; m.reason = DROP_REASON_TRUNCATED;
      end else if (proto == IPPROTO_TCP && (doff < 16'd20 || doff > l4_len)) begin
        m.kind = K_DROP; m.reason = DROP_REASON_BAD_L4_HEADER;
      end else if (proto == IPPROTO_UDP && l4_len < 16'd8) begin
        m.kind = K_DROP; m.reason = DROP_REASON_TRUNCATED;
      end else begin
        m.kind = K_LOOKUP;
        m.reason = '0;
        lookup = 1'b1;
        m.l4_off = m.l3_off + (m.ipv6 ? 8'd40 : 8'd20);
        m.dport = be16(lv, 34 + L4_DPORT);
        if (proto == IPPROTO_TCP) begin
          m.tcp_flags = lv[8*(34+TCPH_FLAGS) +: 8];
          m.l4_csum = be16(lv, 34 + TCPH_CSUM);
          m.seq = be32(lv, 34 + TCPH_SEQ);
          m.ack = be32(lv, 34 + TCPH_ACK);
          m.opt_len = 6'(doff - 16'd20);
          m.opts = lv[8*(34+TCPH_LEN) +: 8*OPT_BYTES];
        end else begin
          m.l4_csum = be16(lv, 34 + UDPH_CSUM);
        end
      end
    end

    // LookupKey: the tuple as the packet carries it, protocol, family, two zero bytes.
    key = '0;
    key[8*LOOKUP_KEY_TUPLE_SRC_ADDR_OFFSET +: 128] = src;
    key[8*LOOKUP_KEY_TUPLE_DST_ADDR_OFFSET +: 128] = dst;
    if (lookup) begin
      key[8*LOOKUP_KEY_TUPLE_SRC_PORT_OFFSET +: 16] = lv[8*(34+L4_SPORT) +: 16];
      key[8*LOOKUP_KEY_TUPLE_DST_PORT_OFFSET +: 16] = lv[8*(34+L4_DPORT) +: 16];
    end
    key[8*LOOKUP_KEY_PROTO_OFFSET +: 8] = proto;
    key[8*LOOKUP_KEY_FAMILY_OFFSET +: 8] = m.ipv6 ? 8'd6 : 8'd4;
    skey = steer_key(key);
  end

  // The steering key: the two endpoints (address ‖ port, 18 bytes) in ascending byte order,
  // then protocol, family and two zero bytes.
  function automatic logic [8*KEY_BYTES-1:0] steer_key(input logic [8*KEY_BYTES-1:0] k);
    logic [143:0] a, b, an, bn;
    logic [8*KEY_BYTES-1:0] s;
    a = {k[8*LOOKUP_KEY_TUPLE_SRC_PORT_OFFSET +: 16], k[8*LOOKUP_KEY_TUPLE_SRC_ADDR_OFFSET +: 128]};
    b = {k[8*LOOKUP_KEY_TUPLE_DST_PORT_OFFSET +: 16], k[8*LOOKUP_KEY_TUPLE_DST_ADDR_OFFSET +: 128]};
    // As numbers with byte 0 most significant, for the byte-order comparison.
    for (int i = 0; i < 18; i++) begin
      an[8*(17-i) +: 8] = a[8*i +: 8];
      bn[8*(17-i) +: 8] = b[8*i +: 8];
    end
    s = '0;
    s[0 +: 144] = (an <= bn) ? a : b;
    s[144 +: 144] = (an <= bn) ? b : a;
    s[8*36 +: 16] = k[8*LOOKUP_KEY_PROTO_OFFSET +: 16];
    steer_key = s;
  endfunction

  always_ff @(posedge clk) begin
    if (rst) out_valid <= 1'b0;
    else out_valid <= in_valid;
    out_meta <= m;
    out_lookup <= lookup;
    out_key <= key;
    out_ip <= ip;
    out_steer_key <= skey;
    out_dst <= dst;
  end
endmodule
