// Ingress: takes frames from the 512-bit receive stream, stores every beat in the packet
// buffer (the data FIFO the emit stage reads back), and hands the parser each frame's header
// window (its first two beats, bytes past the frame zeroed), length and port when its last beat
// arrives. Parsing waits for the last beat because the length checks of the contract (an IP
// total length "within the frame") need the whole frame's length; the buffer holds the frame
// meanwhile, so this costs latency, never throughput.
module sl_ingress
  import sl_types_pkg::*;
(
  input  logic                      clk,
  input  logic                      rst,
  // Receive stream.
  input  logic                      in_valid,
  output logic                      in_ready,
  input  logic [8*BUS_BYTES-1:0]    in_data,
  input  logic [BUS_BYTES-1:0]      in_keep,
  input  logic                      in_last,
  input  logic [2:0]                in_port,
  // Room downstream: the packet buffer, and the parser's FIFOs for a frame's last beat.
  input  logic                      buf_room,
  input  logic                      front_room,
  // To the packet buffer.
  output logic                      buf_push,
  output logic [8*BUS_BYTES+BUS_BYTES:0] buf_din,   // {last, keep, data}
  // To the parser, one cycle after the last beat.
  output logic                      frame_valid,
  output logic [8*WIN_BYTES-1:0]    frame_win,
  output logic [15:0]               frame_len,
  output logic [2:0]                frame_port
);
  logic [15:0] len_acc;
  logic        second;           // the next beat is the frame's second
  logic        first;            // the next beat is a frame's first
  logic [8*WIN_BYTES-1:0] win;
  logic [8*BUS_BYTES-1:0] masked;
  logic [6:0] nbytes;
  logic take;

  assign in_ready = buf_room && front_room;
  assign take = in_valid && in_ready;

  always_comb begin
    nbytes = '0;
    for (int i = 0; i < BUS_BYTES; i++) begin
      nbytes = nbytes + {6'd0, in_keep[i]};
      masked[8*i +: 8] = in_keep[i] ? in_data[8*i +: 8] : 8'h00;
    end
  end

  assign buf_push = take;
  assign buf_din = {in_last, in_keep, in_data};

  always_ff @(posedge clk) begin
    if (rst) begin
      first <= 1'b1; second <= 1'b0; len_acc <= '0; frame_valid <= 1'b0;
    end else begin
      frame_valid <= 1'b0;
      if (take) begin
        if (first) win <= {{(8*(WIN_BYTES-BUS_BYTES)){1'b0}}, masked};
        else if (second) win[8*BUS_BYTES +: 8*BUS_BYTES] <= masked;
        second <= first && !in_last;
        first <= in_last;
        len_acc <= in_last ? '0 : len_acc + {9'd0, nbytes};
        if (in_last) begin
          frame_valid <= 1'b1;
          frame_len <= len_acc + {9'd0, nbytes};
          frame_port <= in_port;
          frame_win <= first ? {{(8*(WIN_BYTES-BUS_BYTES)){1'b0}}, masked}
                     : second ? {masked, win[0 +: 8*BUS_BYTES]} : win;
        end
      end
    end
  end
endmodule
