// The Verilator testbench of the Sluice fast path, driven by the model's fixture corpus
// (exported by `SLUICE_FIXTURES_RTL=DIR cargo test -p sim_model --test fixtures`).
//
//   tb_main --cases DIR/cases.txt [--lat N]     every datapath case, byte for byte
//   tb_main --stream DIR/stream.txt --lat N     back-to-back 64-byte frames: packets per cycle
//
// For each case: reset, load the registers, status, stash, next hops, records, their extension
// words and buckets the
// export gives, send the frame, run until the pipeline is idle, and compare with what the model
// did: frames sent (port and bytes), punts (exception descriptor and bytes), drops (reason),
// flow events, every counter's delta, and every record of the table afterwards. The file format
// is described in sim-model/tests/corpus/runner/rtl.rs. Exit status 0 only when all passed.

#include "Vtb_top.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <algorithm>
#include <map>
#include <stdexcept>
#include <sstream>
#include <string>
#include <vector>

using Bytes = std::vector<uint8_t>;

namespace {

struct Frame {
  int port = 0;
  Bytes data;
  Bytes desc;       // punts: the exception descriptor
  uint64_t cycle = 0;
};

struct Event {
  int cause;
  uint32_t record;
  int live;
  bool operator==(const Event& o) const { return cause == o.cause && record == o.record && live == o.live; }
};

struct Case {
  std::string name;
  uint32_t records = 0, buckets = 0, stash = 0, next_hops = 0, ports = 0;
  uint32_t now_ticks = 0;
  uint64_t now_ns = 0;
  uint32_t link = 0, full = 0;
  std::vector<std::pair<uint32_t, uint32_t>> regs;
  std::vector<std::pair<uint32_t, Bytes>> recs, exts, bkts, stash_e, nhs;
  std::vector<Frame> in, tx, punts;
  std::vector<int> drops;
  std::vector<Event> events;
  std::vector<std::pair<uint32_t, uint64_t>> ctrs;
  std::map<uint32_t, Bytes> after;
};

Bytes unhex(const std::string& s) {
  Bytes b;
  for (size_t i = 0; i + 1 < s.size(); i += 2) b.push_back(static_cast<uint8_t>(std::stoul(s.substr(i, 2), nullptr, 16)));
  return b;
}

std::string hex(const Bytes& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (uint8_t x : b) {
    s += d[x >> 4];
    s += d[x & 15];
  }
  return s;
}

uint64_t num(const std::string& s) { return std::stoull(s, nullptr, 16); }

// Reads the export; a malformed line is an error naming the line, never a crash.
bool load(const std::string& path, std::vector<Case>& out) {
  std::ifstream f(path);
  if (!f) {
    std::fprintf(stderr, "tb: cannot open %s\n", path.c_str());
    return false;
  }
  std::string line;
  size_t lineno = 0;
  Case c;
  while (std::getline(f, line)) {
    ++lineno;
    std::istringstream is(line);
    std::string tag;
    is >> tag;
    std::vector<std::string> t;
    for (std::string w; is >> w;) t.push_back(w);
    auto need = [&](size_t n) {
      if (t.size() < n) throw std::runtime_error("line " + std::to_string(lineno) + ": " + tag + " needs " + std::to_string(n) + " fields");
    };
    try {
      if (tag == "case") {
        c = Case();
        c.name = line.substr(5);
      } else if (tag == "geom") {
        need(5);
        c.records = num(t[0]); c.buckets = num(t[1]); c.stash = num(t[2]); c.next_hops = num(t[3]); c.ports = num(t[4]);
      } else if (tag == "now") {
        need(2);
        c.now_ticks = num(t[0]); c.now_ns = num(t[1]);
      } else if (tag == "status") {
        need(2);
        c.link = num(t[0]); c.full = num(t[1]);
      } else if (tag == "reg") {
        need(2);
        c.regs.push_back({(uint32_t)num(t[0]), (uint32_t)num(t[1])});
      } else if (tag == "rec" || tag == "ext" || tag == "bkt" || tag == "stash" || tag == "nh" || tag == "after") {
        need(2);
        auto e = std::make_pair((uint32_t)num(t[0]), unhex(t[1]));
        if (tag == "rec") c.recs.push_back(e);
        else if (tag == "ext") c.exts.push_back(e);
        else if (tag == "bkt") c.bkts.push_back(e);
        else if (tag == "stash") c.stash_e.push_back(e);
        else if (tag == "nh") c.nhs.push_back(e);
        else c.after[e.first] = e.second;
      } else if (tag == "in" || tag == "tx") {
        need(2);
        Frame fr;
        fr.port = std::stoi(t[0]);
        fr.data = unhex(t[1]);
        (tag == "in" ? c.in : c.tx).push_back(fr);
      } else if (tag == "punt") {
        need(2);
        Frame fr;
        fr.desc = unhex(t[0]);
        fr.data = unhex(t[1]);
        c.punts.push_back(fr);
      } else if (tag == "drop") {
        need(1);
        c.drops.push_back(std::stoi(t[0]));
      } else if (tag == "event") {
        need(3);
        c.events.push_back({std::stoi(t[0]), (uint32_t)num(t[1]), std::stoi(t[2])});
      } else if (tag == "ctr") {
        need(2);
        c.ctrs.push_back({(uint32_t)num(t[0]), num(t[1])});
      } else if (tag == "end") {
        out.push_back(c);
      } else if (!tag.empty()) {
        throw std::runtime_error("line " + std::to_string(lineno) + ": unknown tag " + tag);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tb: %s: %s\n", path.c_str(), e.what());
      return false;
    }
  }
  return true;
}

template <std::size_t W>
void put(VlWide<W>& w, const Bytes& b) {
  for (std::size_t i = 0; i < W; i++) w[i] = 0;
  for (std::size_t j = 0; j < b.size() && j < 4 * W; j++) w[j / 4] |= static_cast<uint32_t>(b[j]) << (8 * (j % 4));
}

template <std::size_t W>
Bytes get(const VlWide<W>& w, std::size_t n) {
  Bytes b(n);
  for (std::size_t j = 0; j < n; j++) b[j] = static_cast<uint8_t>(w[j / 4] >> (8 * (j % 4)));
  return b;
}

class Bench {
 public:
  explicit Bench(const char* trace) : top_(new Vtb_top) {
#if VM_TRACE
    if (trace) {
      Verilated::traceEverOn(true);
      vcd_ = new VerilatedVcdC;
      top_->trace(vcd_, 99);
      vcd_->open(trace);
    }
#else
    (void)trace;
#endif
  }
  ~Bench() {
#if VM_TRACE
    if (vcd_) vcd_->close();
#endif
    top_->final();
  }

  // One clock; collects what the outputs carry after the edge.
  void tick() {
    top_->clk = 0;
    top_->eval();
#if VM_TRACE
    if (vcd_) vcd_->dump(2 * cycle_);
#endif
    top_->clk = 1;
    top_->eval();
#if VM_TRACE
    if (vcd_) vcd_->dump(2 * cycle_ + 1);
#endif
    ++cycle_;
    collect();
  }

  void reset() {
    top_->rst = 1;
    top_->mem_clear = 1;
    tick();
    top_->mem_clear = 0;
    tick();
    top_->rst = 0;
    tick();
    tx_.clear(); punts_.clear(); drops_.clear(); events_.clear(); retries_ = 0;
    cur_tx_ = Frame(); cur_pt_ = Frame();
  }

  void setup(const Case& c, uint16_t lat) {
    reset();
    top_->lat = lat;
    top_->st_now_ticks = c.now_ticks;
    top_->st_now_ns = c.now_ns;
    top_->st_link_up = c.link;
    top_->st_ring_full = c.full;
    top_->st_records = c.records;
    top_->st_buckets = c.buckets;
    top_->st_next_hops = c.next_hops;
    for (auto& r : c.regs) {
      top_->reg_we = 1; top_->reg_addr = r.first; top_->reg_wdata = r.second;
      tick();
    }
    top_->reg_we = 0;
    auto table = [&](int sel, const std::vector<std::pair<uint32_t, Bytes>>& v) {
      for (auto& e : v) {
        top_->tbl_we = 1; top_->tbl_sel = sel; top_->tbl_addr = e.first;
        put(top_->tbl_wdata, e.second);
        tick();
      }
      top_->tbl_we = 0;
    };
    table(0, c.stash_e);
    table(1, c.nhs);
    for (auto& e : c.recs) {
      top_->ld_rec_we = 1; top_->ld_rec_index = e.first; put(top_->ld_rec_data, e.second);
      tick();
    }
    top_->ld_rec_we = 0;
    // The record extension memory (spec 1.4): one little-endian 32-bit word per record.
    for (auto& e : c.exts) {
      uint32_t w = 0;
      for (size_t j = 0; j < e.second.size() && j < 4; j++) w |= static_cast<uint32_t>(e.second[j]) << (8 * j);
      top_->ld_ext_we = 1; top_->ld_ext_index = e.first; top_->ld_ext_data = w;
      tick();
    }
    top_->ld_ext_we = 0;
    for (auto& e : c.bkts) {
      top_->ld_bkt_we = 1; top_->ld_bkt_index = e.first; put(top_->ld_bkt_data, e.second);
      tick();
    }
    top_->ld_bkt_we = 0;
  }

  uint64_t reg(uint32_t addr) {
    top_->reg_addr = addr;
    top_->eval();
    return top_->reg_rdata;
  }

  // Streams the frames back to back (one beat per cycle whenever the fast path is ready), then
  // runs until it is idle. Returns the cycle of each frame's last beat accepted.
  bool send(const std::vector<Frame>& frames, std::vector<uint64_t>& accepted) {
    size_t f = 0, beat = 0;
    uint64_t idle_for = 0, start = cycle_;
    while (true) {
      bool have = f < frames.size();
      if (have) {
        const Frame& fr = frames[f];
        size_t beats = (fr.data.size() + 63) / 64;
        Bytes b(fr.data.begin() + 64 * beat, fr.data.begin() + std::min(fr.data.size(), 64 * beat + 64));
        put(top_->in_data, b);
        top_->in_keep = b.size() == 64 ? ~0ULL : ((1ULL << b.size()) - 1);
        top_->in_last = beat + 1 == beats;
        top_->in_port = fr.port;
        top_->in_valid = 1;
        top_->eval();
        bool took = top_->in_ready;
        tick();
        if (took) {
          if (++beat == beats) {
            accepted.push_back(cycle_);
            ++f;
            beat = 0;
          }
        }
      } else {
        top_->in_valid = 0;
        tick();
        idle_for = top_->idle ? idle_for + 1 : 0;
        if (idle_for > 8) return true;
      }
      if (cycle_ - start > 2000000) {
        std::fprintf(stderr, "tb: timeout\n");
        return false;
      }
    }
  }

  std::vector<Frame> tx_, punts_;
  std::vector<int> drops_;
  std::vector<Event> events_;
  uint64_t cycle_ = 0, retries_ = 0;
  Vtb_top* top_;

 private:
  void collect() {
    if (top_->tx_valid) {
      Bytes b = get(top_->tx_data, 64);
      int n = 0;
      for (int i = 0; i < 64; i++) n += (top_->tx_keep >> i) & 1;
      cur_tx_.port = top_->tx_port;
      cur_tx_.data.insert(cur_tx_.data.end(), b.begin(), b.begin() + n);
      if (top_->tx_last) {
        cur_tx_.cycle = cycle_;
        tx_.push_back(cur_tx_);
        cur_tx_ = Frame();
      }
    }
    if (top_->pt_valid) {
      Bytes b = get(top_->pt_data, 64);
      int n = 0;
      for (int i = 0; i < 64; i++) n += (top_->pt_keep >> i) & 1;
      cur_pt_.data.insert(cur_pt_.data.end(), b.begin(), b.begin() + n);
      if (top_->pt_last) {
        cur_pt_.desc = get(top_->pt_desc, 32);
        punts_.push_back(cur_pt_);
        cur_pt_ = Frame();
      }
    }
    if (top_->drop_valid) drops_.push_back(top_->drop_reason);
    if (top_->ev_valid) events_.push_back({top_->ev_cause, top_->ev_record, 1});
    if (top_->retry) ++retries_;
  }

  Frame cur_tx_, cur_pt_;
#if VM_TRACE
  VerilatedVcdC* vcd_ = nullptr;
#endif
};

// Compares what the fast path did with what the model did; the first difference, or "".
std::string compare(Bench& b, const Case& c, const std::vector<uint64_t>& before) {
  std::ostringstream why;
  // Frames sent: per port, in order.
  for (int p = 0; p < 8; p++) {
    std::vector<const Frame*> want, got;
    for (auto& f : c.tx) if (f.port == p) want.push_back(&f);
    for (auto& f : b.tx_) if (f.port == p) got.push_back(&f);
    if (want.size() != got.size()) {
      why << "port " << p << ": " << got.size() << " frames sent, the model sent " << want.size();
      return why.str();
    }
    for (size_t i = 0; i < want.size(); i++) {
      if (want[i]->data != got[i]->data) {
        why << "port " << p << " frame " << i << " differs\n  got  " << hex(got[i]->data) << "\n  want " << hex(want[i]->data);
        return why.str();
      }
    }
  }
  if (b.punts_.size() != c.punts.size()) {
    why << b.punts_.size() << " punts, the model punted " << c.punts.size();
    return why.str();
  }
  for (size_t i = 0; i < c.punts.size(); i++) {
    if (b.punts_[i].desc != c.punts[i].desc) {
      why << "punt " << i << " descriptor differs\n  got  " << hex(b.punts_[i].desc) << "\n  want " << hex(c.punts[i].desc);
      return why.str();
    }
    if (b.punts_[i].data != c.punts[i].data) {
      why << "punt " << i << " frame differs";
      return why.str();
    }
  }
  if (b.drops_ != c.drops) {
    why << b.drops_.size() << " drops (first reason " << (b.drops_.empty() ? 0 : b.drops_[0]) << "), the model: "
        << c.drops.size() << " (first reason " << (c.drops.empty() ? 0 : c.drops[0]) << ")";
    return why.str();
  }
  if (!(b.events_ == c.events)) {
    why << b.events_.size() << " flow events, the model sent " << c.events.size();
    if (!b.events_.empty()) why << " (got cause " << b.events_[0].cause << " record " << b.events_[0].record << ")";
    return why.str();
  }
  for (size_t i = 0; i < c.ctrs.size(); i++) {
    uint64_t now = b.reg(c.ctrs[i].first);
    uint64_t d = now - before[i];
    if (c.ctrs[i].first >= 0x2000) d &= 0xffffffffULL;   // RING_DROPS is 32 bits wide
    if (d != c.ctrs[i].second) {
      why << "counter at BAR0 " << std::hex << "0x" << c.ctrs[i].first << std::dec << " moved by " << d << ", the model's by " << c.ctrs[i].second;
      return why.str();
    }
  }
  for (uint32_t i = 0; i < c.records; i++) {
    b.top_->dbg_rec_index = i;
    b.top_->eval();
    Bytes got = get(b.top_->dbg_rec_data, 128);
    auto it = c.after.find(i);
    Bytes want = it == c.after.end() ? Bytes(128, 0) : it->second;
    if (got != want) {
      why << "record " << i << " afterwards differs\n  got  " << hex(got) << "\n  want " << hex(want);
      return why.str();
    }
  }
  return "";
}

int run_cases(Bench& b, const std::vector<Case>& cases, uint16_t lat) {
  int pass = 0, fail = 0;
  for (auto& c : cases) {
    b.setup(c, lat);
    std::vector<uint64_t> before;
    for (auto& r : c.ctrs) before.push_back(b.reg(r.first));
    std::vector<uint64_t> accepted;
    std::string why = b.send(c.in, accepted) ? compare(b, c, before) : "did not finish";
    if (why.empty()) {
      ++pass;
      if (b.retries_) std::printf("ok   case %s (%llu second record reads)\n", c.name.c_str(), static_cast<unsigned long long>(b.retries_));
      else std::printf("ok   case %s\n", c.name.c_str());
    } else {
      ++fail;
      std::printf("FAIL case %s: %s\n", c.name.c_str(), why.c_str());
    }
  }
  std::printf("rtl fixtures (latency %u): %d passed, %d failed\n", lat, pass, fail);
  return fail == 0 ? 0 : 1;
}

int run_stream(Bench& b, const Case& c, uint16_t lat) {
  b.setup(c, lat);
  std::vector<uint64_t> accepted;
  if (!b.send(c.in, accepted)) return 1;
  std::string why = compare(b, c, {});
  if (b.tx_.empty() || accepted.empty()) why = "nothing sent";
  if (!why.empty()) {
    std::printf("FAIL stream at latency %u: %s\n", lat, why.c_str());
    return 1;
  }
  // Sustained rates, in frames per cycle: frames accepted between the first and the last, and
  // frames sent between the first and the last (the pipeline's latency is outside both spans).
  double n = static_cast<double>(c.in.size());
  double in_rate = (n - 1) / static_cast<double>(accepted.back() - accepted.front());
  double out_rate = (n - 1) / static_cast<double>(b.tx_.back().cycle - b.tx_.front().cycle);
  uint64_t first_latency = b.tx_.front().cycle - accepted.front();
  std::printf("stream latency %u: %zu frames of 64 bytes, in %.4f pkt/cycle, out %.4f pkt/cycle, "
              "first frame through in %llu cycles, %llu second record reads; byte-exact\n",
              lat, c.in.size(), in_rate, out_rate, static_cast<unsigned long long>(first_latency),
              static_cast<unsigned long long>(b.retries_));
  std::printf("rate latency %u: %.4f\n", lat, std::min(in_rate, out_rate));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Verilated::commandArgs(argc, argv);
  std::string cases_path, stream_path;
  const char* trace = nullptr;
  int lat = 50;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tb: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--cases") cases_path = next();
    else if (a == "--stream") stream_path = next();
    else if (a == "--lat") lat = std::atoi(next().c_str());
    else if (a == "--trace") trace = argv[++i < argc ? i : argc - 1];
    else if (a.rfind("+verilator", 0) == 0) continue;
    else {
      std::fprintf(stderr, "tb: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (lat < 1 || lat > 1000) {
    std::fprintf(stderr, "tb: --lat must be 1..1000\n");
    return 2;
  }
  Bench b(trace);
  if (!cases_path.empty()) {
    std::vector<Case> cases;
    if (!load(cases_path, cases)) return 2;
    return run_cases(b, cases, static_cast<uint16_t>(lat));
  }
  if (!stream_path.empty()) {
    std::vector<Case> s;
    if (!load(stream_path, s) || s.size() != 1) return 2;
    return run_stream(b, s[0], static_cast<uint16_t>(lat));
  }
  std::fprintf(stderr, "usage: tb_main --cases FILE [--lat N] | --stream FILE --lat N [--trace FILE.vcd]\n");
  return 2;
}
