// The BAR0 registers the fast path owns or reads, decoded at the offsets of sluice_spec_pkg
// (so an offset moved in rtl_spec moves here at the next `sluice spec --sv`): CONTROL.CTRL,
// the flow table's seeds, the whole PUNT block, each port's CTRL and MTU, the exception rings'
// CTRL.ENABLE and BUF_SIZE; and the counters the datapath moves: the COUNTERS block (less the
// inject and event counters, which belong to those engines), each port's packet, byte and drop
// counters, and each exception ring's RING_DROPS. Registers of other blocks are other modules'
// business: writes to them are ignored here and reads return 0.
module sl_regs
  import sluice_spec_pkg::*;
  import sl_types_pkg::*;
(
  input  logic        clk,
  input  logic        rst,
  input  logic        we,
  input  logic [31:0] addr,      // BAR0 offset
  input  logic [31:0] wdata,
  output logic [63:0] rdata,     // combinational read of `addr`
  input  cnt_t        cnt,
  output cfg_t        cfg
);
  localparam logic [31:0] EXC0 = 32'(RING_ID_EXCEPTION0);

  // Register arrays are decoded one instance at a time with constant indices (a loop per
  // array), which synthesizes to one comparator per instance instead of a variable index.
  function automatic logic at(input logic [31:0] a, input logic [31:0] base, input logic [31:0] stride,
                              input int unsigned i);
    at = a == base + i * stride;
  endfunction

  // ---- Configuration ----
  always_ff @(posedge clk) begin
    if (rst) begin
      cfg.enable <= CONTROL_CTRL_RESET_VALUE[CONTROL_CTRL_ENABLE_LSB];
      cfg.seed_a <= FLOW_TABLE_SEED_A_RESET_VALUE;
      cfg.seed_b <= FLOW_TABLE_SEED_B_RESET_VALUE;
      cfg.queues <= PUNT_QUEUES_RESET_VALUE;
      cfg.lport_mask <= PUNT_LPORT_MASK_RESET_VALUE;
      cfg.steer_seed <= PUNT_STEER_SEED_RESET_VALUE;
      cfg.fin_forward <= PUNT_HIT_ACTION_RESET_VALUE[PUNT_HIT_ACTION_FIN_FORWARD_LSB];
      cfg.rst_forward <= PUNT_HIT_ACTION_RESET_VALUE[PUNT_HIT_ACTION_RST_FORWARD_LSB];
      cfg.reason_queue <= {PUNT_REASON_QUEUE_COUNT{PUNT_REASON_QUEUE_RESET_VALUE}};
      cfg.reta <= {PUNT_RETA_COUNT{PUNT_RETA_RESET_VALUE}};
      cfg.lip_addr <= '0;
      cfg.lip_valid <= '0;
      cfg.lip_ipv6 <= '0;
      cfg.port_enable <= {NPORTS{PORTS_PORT_CTRL_RESET_VALUE[PORTS_PORT_CTRL_ENABLE_LSB]}};
      cfg.port_mtu <= {NPORTS{PORTS_PORT_MTU_RESET_VALUE}};
      cfg.ring_enable <= {NQUEUES{RINGS_RING_CTRL_RESET_VALUE[RINGS_RING_CTRL_ENABLE_LSB]}};
      cfg.ring_buf_size <= {NQUEUES{RINGS_RING_BUF_SIZE_RESET_VALUE}};
    end else if (we) begin
      if (addr == CONTROL_BASE + CONTROL_CTRL) cfg.enable <= wdata[CONTROL_CTRL_ENABLE_LSB];
      if (addr == FLOW_TABLE_BASE + FLOW_TABLE_SEED_A) cfg.seed_a <= wdata;
      if (addr == FLOW_TABLE_BASE + FLOW_TABLE_SEED_B) cfg.seed_b <= wdata;
      if (addr == PUNT_BASE + PUNT_QUEUES) cfg.queues <= wdata;
      if (addr == PUNT_BASE + PUNT_LPORT_MASK) cfg.lport_mask <= wdata;
      if (addr == PUNT_BASE + PUNT_STEER_SEED) cfg.steer_seed <= wdata;
      if (addr == PUNT_BASE + PUNT_HIT_ACTION) begin
        cfg.fin_forward <= wdata[PUNT_HIT_ACTION_FIN_FORWARD_LSB];
        cfg.rst_forward <= wdata[PUNT_HIT_ACTION_RST_FORWARD_LSB];
      end
      for (int i = 0; i < PUNT_REASON_QUEUE_COUNT; i++)
        if (at(addr, PUNT_BASE + PUNT_REASON_QUEUE, PUNT_REASON_QUEUE_STRIDE, i)) cfg.reason_queue[32*i +: 32] <= wdata;
      for (int i = 0; i < PUNT_RETA_COUNT; i++)
        if (at(addr, PUNT_BASE + PUNT_RETA, PUNT_RETA_STRIDE, i)) cfg.reta[32*i +: 32] <= wdata;
      for (int i = 0; i < PUNT_LIP_CTL_COUNT; i++) begin
        if (at(addr, PUNT_BASE + PUNT_LIP_ADDR0, PUNT_LIP_ADDR0_STRIDE, i)) cfg.lip_addr[128*i +: 32] <= wdata;
        if (at(addr, PUNT_BASE + PUNT_LIP_ADDR1, PUNT_LIP_ADDR1_STRIDE, i)) cfg.lip_addr[128*i + 32 +: 32] <= wdata;
        if (at(addr, PUNT_BASE + PUNT_LIP_ADDR2, PUNT_LIP_ADDR2_STRIDE, i)) cfg.lip_addr[128*i + 64 +: 32] <= wdata;
        if (at(addr, PUNT_BASE + PUNT_LIP_ADDR3, PUNT_LIP_ADDR3_STRIDE, i)) cfg.lip_addr[128*i + 96 +: 32] <= wdata;
        if (at(addr, PUNT_BASE + PUNT_LIP_CTL, PUNT_LIP_CTL_STRIDE, i)) begin
          cfg.lip_valid[i] <= wdata[PUNT_LIP_CTL_VALID_LSB];
          cfg.lip_ipv6[i] <= wdata[PUNT_LIP_CTL_IPV6_LSB];
        end
      end
      for (int i = 0; i < NPORTS; i++) begin
        if (at(addr, PORTS_BASE + PORTS_PORT_CTRL, PORTS_PORT_CTRL_STRIDE, i)) cfg.port_enable[i] <= wdata[PORTS_PORT_CTRL_ENABLE_LSB];
        if (at(addr, PORTS_BASE + PORTS_PORT_MTU, PORTS_PORT_MTU_STRIDE, i)) cfg.port_mtu[32*i +: 32] <= wdata;
      end
      for (int i = 0; i < NQUEUES; i++) begin
        if (at(addr, RINGS_BASE + RINGS_RING_CTRL, RINGS_RING_CTRL_STRIDE, EXC0 + i)) cfg.ring_enable[i] <= wdata[RINGS_RING_CTRL_ENABLE_LSB];
        if (at(addr, RINGS_BASE + RINGS_RING_BUF_SIZE, RINGS_RING_BUF_SIZE_STRIDE, EXC0 + i)) cfg.ring_buf_size[32*i +: 32] <= wdata;
      end
    end
  end

  // ---- Counters ----
  localparam int unsigned NG = 8;   // RX_PACKETS, RX_BYTES, TX_PACKETS, TX_BYTES, HITS, MISSES, PUNTS, DROPS
  logic [63:0] global_c [NG];
  logic [63:0] punt_c [16];
  logic [63:0] drop_c [16];
  logic [63:0] port_rx_p [NPORTS], port_rx_b [NPORTS], port_tx_p [NPORTS], port_tx_b [NPORTS], port_drops [NPORTS];
  logic [31:0] ring_drops [NQUEUES];

  always_ff @(posedge clk) begin
    if (rst) begin
      for (int i = 0; i < NG; i++) global_c[i] <= '0;
      for (int i = 0; i < 16; i++) begin punt_c[i] <= '0; drop_c[i] <= '0; end
      for (int i = 0; i < NPORTS; i++) begin
        port_rx_p[i] <= '0; port_rx_b[i] <= '0; port_tx_p[i] <= '0; port_tx_b[i] <= '0; port_drops[i] <= '0;
      end
      for (int i = 0; i < NQUEUES; i++) ring_drops[i] <= '0;
    end else if (cnt.valid) begin
      global_c[0] <= global_c[0] + 64'd1;
      global_c[1] <= global_c[1] + {48'd0, cnt.rx_bytes};
      if (cnt.tx) begin
        global_c[2] <= global_c[2] + 64'd1;
        global_c[3] <= global_c[3] + {48'd0, cnt.tx_bytes};
        for (int i = 0; i < NPORTS; i++) if (cnt.tx_port == 3'(i)) begin
          port_tx_p[i] <= port_tx_p[i] + 64'd1;
          port_tx_b[i] <= port_tx_b[i] + {48'd0, cnt.tx_bytes};
        end
      end
      if (cnt.hit) global_c[4] <= global_c[4] + 64'd1;
      if (cnt.miss) global_c[5] <= global_c[5] + 64'd1;
      if (cnt.punt) begin
        global_c[6] <= global_c[6] + 64'd1;
        for (int i = 0; i < 16; i++) if (cnt.reason[3:0] == 4'(i)) punt_c[i] <= punt_c[i] + 64'd1;
      end
      if (cnt.drop) begin
        global_c[7] <= global_c[7] + 64'd1;
        for (int i = 0; i < 16; i++) if (cnt.reason[3:0] == 4'(i)) drop_c[i] <= drop_c[i] + 64'd1;
      end
      if (cnt.port_ok) begin
        for (int i = 0; i < NPORTS; i++) if (cnt.port == 3'(i)) begin
          port_rx_p[i] <= port_rx_p[i] + 64'd1;
          port_rx_b[i] <= port_rx_b[i] + {48'd0, cnt.rx_bytes};
        end
      end
      for (int i = 0; i < NPORTS; i++)
        if (cnt.port_drop && cnt.port_drop_port == 3'(i)) port_drops[i] <= port_drops[i] + 64'd1;
      for (int i = 0; i < NQUEUES; i++)
        if (cnt.ring_drop && cnt.ring_q == 4'(i)) ring_drops[i] <= ring_drops[i] + 32'd1;
    end
  end

  always_comb begin
    rdata = '0;
    if (addr == COUNTERS_BASE + COUNTERS_RX_PACKETS) rdata = global_c[0];
    if (addr == COUNTERS_BASE + COUNTERS_RX_BYTES) rdata = global_c[1];
    if (addr == COUNTERS_BASE + COUNTERS_TX_PACKETS) rdata = global_c[2];
    if (addr == COUNTERS_BASE + COUNTERS_TX_BYTES) rdata = global_c[3];
    if (addr == COUNTERS_BASE + COUNTERS_HITS) rdata = global_c[4];
    if (addr == COUNTERS_BASE + COUNTERS_MISSES) rdata = global_c[5];
    if (addr == COUNTERS_BASE + COUNTERS_PUNTS) rdata = global_c[6];
    if (addr == COUNTERS_BASE + COUNTERS_DROPS) rdata = global_c[7];
    for (int i = 0; i < 16; i++) begin
      if (at(addr, COUNTERS_BASE + COUNTERS_PUNT_REASON, COUNTERS_PUNT_REASON_STRIDE, i)) rdata = punt_c[i];
      if (at(addr, COUNTERS_BASE + COUNTERS_DROP_REASON, COUNTERS_DROP_REASON_STRIDE, i)) rdata = drop_c[i];
    end
    for (int i = 0; i < NPORTS; i++) begin
      if (at(addr, PORTS_BASE + PORTS_PORT_RX_PACKETS, PORTS_PORT_RX_PACKETS_STRIDE, i)) rdata = port_rx_p[i];
      if (at(addr, PORTS_BASE + PORTS_PORT_RX_BYTES, PORTS_PORT_RX_BYTES_STRIDE, i)) rdata = port_rx_b[i];
      if (at(addr, PORTS_BASE + PORTS_PORT_TX_PACKETS, PORTS_PORT_TX_PACKETS_STRIDE, i)) rdata = port_tx_p[i];
      if (at(addr, PORTS_BASE + PORTS_PORT_TX_BYTES, PORTS_PORT_TX_BYTES_STRIDE, i)) rdata = port_tx_b[i];
      if (at(addr, PORTS_BASE + PORTS_PORT_DROPS, PORTS_PORT_DROPS_STRIDE, i)) rdata = port_drops[i];
    end
    for (int i = 0; i < NQUEUES; i++)
      if (at(addr, RINGS_BASE + RINGS_RING_DROPS, RINGS_RING_DROPS_STRIDE, EXC0 + i)) rdata = {32'd0, ring_drops[i]};
  end
endmodule
