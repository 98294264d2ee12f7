// Internal types and helpers of the Sluice fast path. Every fact of the contract (register
// offsets, memory formats, codes, hash constants) comes from sluice_spec_pkg, generated from
// rtl_spec by `sluice spec --sv`; this package holds only what is internal to this pipeline and
// the standard protocol layouts (RFC 791, 8200, 793, 768), which are not Sluice's to define.
//
// Byte order: a frame, a header window, a flow record and a key are byte vectors with byte i
// in bits [8i+7:8i] (AXI-Stream lane order). A little-endian field of the contract is then its
// bits as they stand; a network-order field is read with be16/be32.

/* verilator lint_off UNUSEDPARAM */
package sl_types_pkg;
  import sluice_spec_pkg::*;

  // ---- Geometry of this build (maxima; the image's values come from sluice_spec_pkg) ----
  localparam int unsigned BUS_BYTES = 64;                 // 512-bit stream
  localparam int unsigned WIN_BYTES = 128;                // header window: the first two beats
  localparam int unsigned NPORTS = PORTS_COUNT_RESET_VALUE;
  localparam int unsigned NQUEUES = RINGS_EXCEPTION_RINGS_RESET_VALUE;
  localparam int unsigned NSTASH = FLOW_TABLE_STASH_SIZE_RESET_VALUE;
  localparam int unsigned NNH = NEXT_HOP_ENTRIES_RESET_VALUE;
  localparam int unsigned SLOTS = FLOW_TABLE_SLOTS_PER_BUCKET_RESET_VALUE;
  localparam int unsigned NCAND = 2 * SLOTS + NSTASH;     // bucket A, bucket B, stash
  localparam int unsigned KEY_BYTES = LOOKUP_KEY_BYTES;
  localparam int unsigned OPT_BYTES = 40;                 // TCP options at most

  // ---- Standard header layouts (offsets from the header's start) ----
  localparam int unsigned ETH_TYPE = 12, VLAN_TCI = 14, VLAN_TYPE = 16;
  localparam int unsigned IP4_VER_IHL = 0, IP4_TOTAL_LEN = 2, IP4_FLAGS_FRAG = 6, IP4_TTL = 8,
                          IP4_PROTO = 9, IP4_CSUM = 10, IP4_SRC = 12, IP4_DST = 16;
  localparam int unsigned IP6_PAYLOAD_LEN = 4, IP6_NEXT = 6, IP6_HOP = 7, IP6_SRC = 8, IP6_DST = 24;
  localparam int unsigned L4_SPORT = 0, L4_DPORT = 2, TCPH_SEQ = 4, TCPH_ACK = 8, TCPH_DOFF = 12,
                          TCPH_FLAGS = 13, TCPH_CSUM = 16, UDPH_CSUM = 6, TCPH_LEN = 20, UDPH_LEN = 8;

  // ---- What the parser decided ----
  localparam logic [1:0] K_LOOKUP = 2'd0, K_PUNT = 2'd1, K_DROP = 2'd2;
  // ---- What the action stage decided ----
  localparam logic [1:0] A_TX = 2'd0, A_PUNT = 2'd1, A_DROP = 2'd2;

  // Everything the action and emit stages need from the parser, per packet.
  typedef struct packed {
    logic [2:0]   port;
    logic [15:0]  frame_len;
    logic [1:0]   kind;
    logic [7:0]   reason;      // PUNT_REASON_* or DROP_REASON_* when kind says so
    logic         vlan;      // the frame has one 802.1Q tag: its IP header is at 18
    logic [15:0]  vlan_tci;
    logic         ipv6;
    logic [7:0]   l3_off;      // as the exception descriptor reports it (0: not IP)
    logic [7:0]   l4_off;      // likewise (0: no transport header parsed)
    logic         udp;
    logic [15:0]  ip_len;
    logic [7:0]   ttl;
    logic [7:0]   tcp_flags;
    logic [15:0]  dport;
    logic         to_lip;      // the destination is in the LIP filter
    logic [31:0]  steer;       // the symmetric steering hash (0 when not IP)
    logic [15:0]  ip_csum;
    logic [15:0]  l4_csum;
    logic [31:0]  seq;
    logic [31:0]  ack;
    logic [5:0]   opt_len;     // TCP option bytes
    logic [8*OPT_BYTES-1:0] opts;
  } meta_t;

  // What a lookup found (record fields the rewrite needs), per packet.
  typedef struct packed {
    logic         hit;
    logic         reply;       // the packet matched the record's reply tuple
    logic [31:0]  record;
    logic [31:0]  cookie;
    logic         seq_adjust;
    logic [31:0]  seq_delta;
    logic [31:0]  ts_delta;    // the record extension memory's word (spec 1.4)
    logic [8*FLOW_TUPLE_BYTES-1:0] other; // the other direction's tuple
    logic [15:0]  next_hop;
    logic [15:0]  l3_delta;
    logic [15:0]  l4_delta;
  } result_t;

  // What the emit stage does with one frame.
  typedef struct packed {
    logic [1:0]               kind;        // A_TX, A_PUNT, A_DROP
    logic [7:0]               reason;      // A_DROP: the drop reason
    logic [2:0]               port;        // A_TX: the egress port
    logic [10:0]              in_beats;    // beats of the received frame
    logic [15:0]              out_len;     // A_TX: bytes sent
    logic [1:0]               shift;       // A_TX: 0 none, 1: 4 bytes fewer before IP, 2: 4 more
    logic [4:0]               l2_len;
    logic [8*18-1:0]          l2;
    logic [8*WIN_BYTES-1:0]   edit_val;
    logic [WIN_BYTES-1:0]     edit_mask;
    logic [8*EXCEPTION_DESC_BYTES-1:0] desc; // A_PUNT: the exception descriptor (phase clear)
  } act_t;

  // One frame's counter increments (sl_regs adds them).
  typedef struct packed {
    logic        valid;
    logic [2:0]  port;
    logic        port_ok;      // the ingress port exists: its counters move
    logic [15:0] rx_bytes;
    logic        hit;
    logic        miss;
    logic        tx;
    logic [2:0]  tx_port;
    logic [15:0] tx_bytes;
    logic        punt;
    logic        drop;
    logic [7:0]  reason;       // of the punt or the drop
    logic        port_drop;
    logic [2:0]  port_drop_port;
    logic        ring_drop;
    logic [3:0]  ring_q;
  } cnt_t;

  // The registers the fast path reads (BAR0 decode in sl_regs), arrays flattened:
  // entry n of `reta` is reta[32n +: 32], and so on.
  typedef struct packed {
    logic                    enable;          // CONTROL.CTRL.ENABLE
    logic [31:0]             seed_a;
    logic [31:0]             seed_b;
    logic [31:0]             queues;
    logic [31:0]             lport_mask;
    logic [31:0]             steer_seed;
    logic                    fin_forward;
    logic                    rst_forward;
    logic [32*16-1:0]        reason_queue;
    logic [32*64-1:0]        reta;
    logic [128*16-1:0]       lip_addr;
    logic [16-1:0]           lip_valid;
    logic [16-1:0]           lip_ipv6;
    logic [NPORTS-1:0]       port_enable;
    logic [32*NPORTS-1:0]    port_mtu;
    logic [NQUEUES-1:0]      ring_enable;     // the exception rings' RING_CTRL.ENABLE
    logic [32*NQUEUES-1:0]   ring_buf_size;
  } cfg_t;

  // Status the fast path reads from other parts of the NIC (and the image's geometry straps).
  typedef struct packed {
    logic [31:0]             now_ticks;       // AGER.NOW_TICKS
    logic [63:0]             now_ns;          // CONTROL.TIMESTAMP
    logic [NPORTS-1:0]       link_up;         // PORT_STATUS.LINK
    logic [NQUEUES-1:0]      ring_full;       // RING_STATUS.FULL of the exception rings
    logic [31:0]             records;         // FLOW_TABLE.RECORDS
    logic [31:0]             buckets;         // FLOW_TABLE.BUCKETS (a power of two)
    logic [31:0]             next_hops;       // NEXT_HOP.ENTRIES
  } status_t;

  // ---- Byte access ----
  function automatic logic [15:0] be16(input logic [8*WIN_BYTES-1:0] v, input int unsigned at);
    be16 = {v[8*at +: 8], v[8*(at+1) +: 8]};
  endfunction

  function automatic logic [31:0] be32(input logic [8*WIN_BYTES-1:0] v, input int unsigned at);
    be32 = {v[8*at +: 8], v[8*(at+1) +: 8], v[8*(at+2) +: 8], v[8*(at+3) +: 8]};
  endfunction

  function automatic logic [15:0] swap16(input logic [15:0] v);
    swap16 = {v[7:0], v[15:8]};
  endfunction

  function automatic logic [31:0] swap32(input logic [31:0] v);
    swap32 = {v[7:0], v[15:8], v[23:16], v[31:24]};
  endfunction

  // ---- RFC 1624 arithmetic, bit-exact with rtl_spec::checksum ----
  // The ones'-complement sum of up to 256 words given as their plain sum: folding a non-zero
  // sum never yields 0, and a zero sum means every word was 0, which is exactly what chained
  // ones_add gives (it returns 0 only for two zeros), so any grouping of the words agrees.
  function automatic logic [15:0] fold(input logic [23:0] sum);
    logic [16:0] once;
    once = {1'b0, sum[15:0]} + {9'd0, sum[23:16]};
    fold = once[15:0] + {15'd0, once[16]};
  endfunction

  // ~o + n over the two words of a 32-bit field, as a plain sum of four terms' worth.
  function automatic logic [17:0] field_delta32(input logic [31:0] o, input logic [31:0] n);
    field_delta32 = {2'b0, ~o[31:16]} + {2'b0, n[31:16]} + {2'b0, ~o[15:0]} + {2'b0, n[15:0]};
  endfunction

  // ---- CRC-32C, as rtl_spec::hash defines it ----
  // The register after feeding `data` (KEY_BYTES bytes, byte 0 first, LSB first) into `init`.
  // CRC is linear: crc(init, data) = crc(init, 0) ^ crc(0, data), so the seeds' part is
  // computed apart from the key's and the key's part is shared by the two index hashes.
  function automatic logic [31:0] crc_bytes(input logic [31:0] init, input logic [8*KEY_BYTES-1:0] data);
    logic [31:0] r;
    r = init;
    for (int i = 0; i < 8 * KEY_BYTES; i++) begin
      // XOR form, not a mux: a tree of XOR gates for synthesis to balance.
      r = (r >> 1) ^ ({32{r[0] ^ data[i]}} & HASH_CRC32C_POLY_REFLECTED);
    end
    crc_bytes = r;
  endfunction
endpackage : sl_types_pkg
/* verilator lint_on UNUSEDPARAM */
