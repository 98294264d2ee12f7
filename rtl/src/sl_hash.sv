// The hashes of rtl_spec::hash: the index placement (bucket A, bucket B, signature) of the
// lookup key and the symmetric steering hash, and the LIP filter check of punt steering.
// Six stages, never stalling:
//   H1  CRC-32C of the key and of the steering key (the seed parts are per register, below)
//   H2  ha, hb, steer; LIP filter             -> the packet's metadata leaves here
//   H3..H6  fmix32(hb) (xor-shifts and the two multiplies, split), buckets
//                                              -> the lookup request leaves here
module sl_hash
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
(
  input  logic                   clk,
  input  logic                   rst,
  input  cfg_t                   cfg,
  input  logic [31:0]            buckets,
  input  logic                   in_valid,
  input  meta_t                  in_meta,
  input  logic                   in_lookup,
  input  logic [8*KEY_BYTES-1:0] in_key,
  input  logic                   in_ip,
  input  logic [8*KEY_BYTES-1:0] in_steer_key,
  input  logic [127:0]           in_dst,
  // The metadata, with the steering hash and the LIP check filled in.
  output logic                   meta_valid,
  output meta_t                  meta,
  // The lookup request.
  output logic                   lk_valid,
  output logic                   lk_lookup,
  output logic [8*KEY_BYTES-1:0] lk_key,
  output logic [31:0]            lk_bucket_a,
  output logic [31:0]            lk_bucket_b,
  output logic [15:0]            lk_sig
);
  // The seeds' part of each CRC, recomputed from the registers (a seed changes only while the
  // table is empty, so its one-cycle lag is never seen).
  logic [31:0] init_a, init_b, init_s;
  always_ff @(posedge clk) begin
    init_a <= crc_bytes(~cfg.seed_a, '0);
    init_b <= crc_bytes(~cfg.seed_b, '0);
    init_s <= crc_bytes(~cfg.steer_seed, '0);
  end

  typedef struct packed {
    logic                   valid;
    logic                   lookup;
    logic [8*KEY_BYTES-1:0] key;
    logic [31:0]            a;   // ha
    logic [31:0]            b;   // hb on its way through fmix32
    logic [31:0]            plo; // a multiply's partial products, added in the next stage
    logic [15:0]            phi;
  } lk_t;

  // H1.
  logic h1_valid, h1_lookup, h1_ip;
  meta_t h1_meta;
  logic [8*KEY_BYTES-1:0] h1_key;
  logic [31:0] h1_crc, h1_scrc;
  logic [127:0] h1_dst;
  always_ff @(posedge clk) begin
    h1_valid <= rst ? 1'b0 : in_valid;
    h1_meta <= in_meta;
    h1_lookup <= in_lookup;
    h1_key <= in_key;
    h1_ip <= in_ip;
    h1_crc <= crc_bytes('0, in_key);
    h1_scrc <= crc_bytes('0, in_steer_key);
    h1_dst <= in_dst;
  end

  // H2.
  lk_t h2, h3, h4, h5;
  always_ff @(posedge clk) begin
    logic lip;
    lip = 1'b0;
    for (int n = 0; n < 16; n++) begin
      if (cfg.lip_valid[n] && cfg.lip_ipv6[n] == h1_meta.ipv6 &&
          (h1_meta.ipv6 ? cfg.lip_addr[128*n +: 128] == h1_dst
                        : cfg.lip_addr[128*n +: 32] == h1_dst[31:0]))
        lip = 1'b1;
    end
    meta_valid <= rst ? 1'b0 : h1_valid;
    meta <= h1_meta;
    meta.to_lip <= h1_ip && lip;
    meta.steer <= h1_ip ? ~(h1_scrc ^ init_s) : 32'd0;
    h2.valid <= rst ? 1'b0 : h1_valid;
    h2.lookup <= h1_lookup;
    h2.key <= h1_key;
    h2.a <= ~(h1_crc ^ init_a);
    h2.b <= ~(h1_crc ^ init_b);
    h2.plo <= '0;
    h2.phi <= '0;
  end

  // H3..H6: fmix32 of hb. Each multiply by a constant is split in two partial products (by the
  // constant's low and high halves; mod 2^32 the high one needs only x's low half), added in
  // the next stage, so no stage holds a whole 32x32 multiplier.
  localparam logic [31:0] C1 = HASH_FMIX32_C1, C2 = HASH_FMIX32_C2;
  always_ff @(posedge clk) begin
    logic [31:0] x, m;
    h3 <= h2;
    x = h2.b ^ (h2.b >> 16);
    h3.plo <= x * {16'd0, C1[15:0]};
    h3.phi <= 16'(x[15:0] * C1[31:16]);
    h4 <= h3;
    m = h3.plo + {h3.phi, 16'd0};
    h4.b <= m ^ (m >> 13);
    h5 <= h4;
    h5.plo <= h4.b * {16'd0, C2[15:0]};
    h5.phi <= 16'(h4.b[15:0] * C2[31:16]);
    if (rst) begin
      h3.valid <= 1'b0; h4.valid <= 1'b0; h5.valid <= 1'b0;
    end
  end

  always_ff @(posedge clk) begin
    logic [31:0] mask, hb, ba, bb;
    mask = buckets - 32'd1;
    hb = h5.plo + {h5.phi, 16'd0};
    hb = hb ^ (hb >> 16);
    ba = h5.a & mask;
    bb = hb & mask;
    if (bb == ba) bb = ba ^ 32'd1;
    lk_valid <= rst ? 1'b0 : h5.valid;
    lk_lookup <= h5.lookup;
    lk_key <= h5.key;
    lk_bucket_a <= ba;
    lk_bucket_b <= bb;
    lk_sig <= h5.a[31:16];
  end
endmodule
