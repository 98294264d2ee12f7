//! The seed corpora, in each target's input format: a few valid inputs per target (and a few
//! near misses), so the fuzzer starts past the first checks. `examples/seeds.rs` writes them
//! to `fuzz/seeds/TARGET/`.

use crate::{record, vfio};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
use rtl_spec::codes::Opcode;
use rtl_spec::formats::{FlowCommand, IndexPos, ModifyMask};
use sim_model::device::ModelConfig;
use sluice::control::proto::{FlowFilter, Request, ServiceSpec};
use sluice_test_support::flows::{self, Conn, RS_MAC};
use sluice_test_support::model::ModelHost;
use std::borrow::Cow;
use std::time::Duration;
use zerocopy::IntoBytes;
use zerocopy::little_endian::{U32, U64};

/// Named seeds of one target.
pub type Seeds = Vec<(String, Vec<u8>)>;

/// Every target's seeds, by target name.
pub fn all() -> Vec<(&'static str, Seeds)> {
    vec![
        ("datapath", datapath()),
        ("commands", commands()),
        ("flash_image", flash_image()),
        ("config", config()),
        ("control", control()),
        ("pcap", pcap()),
        ("vfio_user", vfio_user()),
    ]
}

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let c = Conn::v4_tcp();
    let c6 = Conn::v6_tcp();
    let u6 = Conn::v6_tcp().udp();
    vec![
        ("v4-to-vip", c.to_vip(b"payload")),
        ("v4-to-lip", c.to_lip(b"reply")),
        ("v4-syn", c.packet(c.client, c.vip, 0x02, 64, b"")),
        ("v4-fin", c.packet(c.client, c.vip, 0x01, 64, b"fin")),
        ("v4-rst", c.packet(c.rs, c.lip, 0x04, 64, b"")),
        ("v4-ttl1", c.packet(c.client, c.vip, 0x10, 1, b"ttl")),
        ("v6-udp-to-vip", u6.to_vip(b"six")),
        ("v6-udp-to-lip", u6.to_lip(b"udp")),
        ("v6-tcp-miss", c6.to_vip(b"miss")),
    ]
}

fn datapath() -> Seeds {
    let mut out: Seeds = frames()
        .into_iter()
        .map(|(name, f)| {
            let mut s = Vec::new();
            record(&mut s, 0, &f);
            (name.to_string(), s)
        })
        .collect();
    let mut all = Vec::new();
    for (i, (_, f)) in frames().into_iter().enumerate() {
        record(&mut all, (i % 2) as u8 | if i == 4 { 8 } else { 0 }, &f);
    }
    record(&mut all, 0, &[0xff; 20]);
    out.push(("mixed".into(), all));
    out
}

fn command(opcode: Opcode, record_index: u32) -> FlowCommand {
    FlowCommand { opcode: opcode.into(), record: U32::new(record_index), ..FlowCommand::default() }
}

fn commands() -> Seeds {
    // Where the populated device put record 1's two slots, for Delete and IndexWrite.
    let nic = ModelHost::populated();
    let image = nic.dev.table_image();
    let mut slots = Vec::new();
    for (b, bucket) in image.buckets.iter().enumerate() {
        for (s, slot) in [bucket.slot0, bucket.slot1, bucket.slot2, bucket.slot3].into_iter().enumerate() {
            if slot.word.valid() && slot.record.get() == 1 {
                slots.push((IndexPos::new().with_index(b as u32).with_slot(s as u8), slot));
            }
        }
    }
    let (orig, reply) = if slots[0].1.word.reply() { (slots[1], slots[0]) } else { (slots[0], slots[1]) };
    let one = |head: u8, cmd: FlowCommand| {
        let mut s = Vec::new();
        record(&mut s, head, cmd.as_bytes());
        s
    };
    let mut insert = command(Opcode::Insert, 3);
    insert.slot_orig = IndexPos::new().with_index(0).with_slot(3);
    insert.slot_reply = IndexPos::new().with_index(1).with_slot(3);
    let mut delete = command(Opcode::Delete, 1);
    delete.slot_orig = orig.0;
    delete.slot_reply = reply.0;
    let mut modify = command(Opcode::Modify, 1);
    modify.arg = ModifyMask::new().with_idle_timeout(true).with_cookie(true).into_bits();
    let mut next_hop = command(Opcode::NextHopSet, 0);
    next_hop.arg = U32::new(5);
    next_hop.payload[..16].copy_from_slice(flows::next_hop(1, RS_MAC, Some(7)).as_bytes());
    let mut clear = command(Opcode::IndexWrite, 0);
    clear.slot_orig = orig.0;
    let mut index_write = command(Opcode::IndexWrite, 0);
    index_write.slot_orig = orig.0;
    index_write.payload[..8].copy_from_slice(orig.1.as_bytes());
    let mut read = command(Opcode::Read, 1);
    read.cookie = U64::new(7);
    let mut seq = Vec::new();
    seq.extend(one(0, delete));
    seq.extend(one(2, insert));
    seq.extend(one(0x10, command(Opcode::Query, 1)));
    seq.extend(one(0, clear));
    seq.extend(one(0, index_write));
    vec![
        ("insert".into(), one(2, insert)),
        ("delete".into(), one(0, delete)),
        ("modify".into(), one(0, modify)),
        ("query".into(), one(0, command(Opcode::Query, 2))),
        ("touch".into(), one(0x20, command(Opcode::Touch, 1))),
        ("flush".into(), one(0, command(Opcode::Flush, 0))),
        ("next-hop".into(), one(0, next_hop)),
        ("read".into(), one(4, read)),
        ("bad-phase".into(), one(1, command(Opcode::Nop, 0))),
        ("sequence".into(), seq),
    ]
}

fn flash_image() -> Seeds {
    let cfg = ModelConfig { build_id: 0x42, ..ModelConfig::small(1024) };
    let payload = cfg.to_toml();
    let header = rtl_spec::image::unsigned_header(&cfg, rtl_spec::SPEC_VERSION, 0x7f, payload.as_bytes());
    let model = sluice::fw::image::assemble(&header, payload.as_bytes());
    let mut fpga_header = header;
    fpga_header.target = rtl_spec::codes::ImageTarget::Fpga.into();
    let fpga = sluice::fw::image::assemble(&fpga_header, b"\x00\x09\x0f\xf0 a bitstream");
    let factory = sim_model::flash::factory_image(&ModelConfig::small(16));
    let with = |mode: u8, image: &[u8]| [&[mode][..], image].concat();
    vec![
        ("model-signed".into(), with(7, &model)),
        ("model-unsigned".into(), with(3, &model)),
        ("fpga-signed".into(), with(7, &fpga)),
        ("factory-as-is".into(), with(0, &factory)),
        ("header-only".into(), with(0, &model[..rtl_spec::formats::IMAGE_HEADER_SIZE])),
    ]
}

fn config() -> Seeds {
    let example = sluice::config::EXAMPLE;
    // The example cut to its first service, and to nothing but its first port.
    let first_service = match example.match_indices("[[service]]").nth(1) {
        Some((at, _)) => example[..at].to_string(),
        None => example.to_string(),
    };
    vec![
        ("example".into(), example.as_bytes().to_vec()),
        ("one-service".into(), first_service.into_bytes()),
        ("syntax-error".into(), b"[device]\ntransport = \"vfio-user\nsocket = 1\n".to_vec()),
        ("list-of-tables".into(), b"port = [{ name = \"p0\" }]\n".to_vec()),
    ]
}

fn control() -> Seeds {
    let spec = ServiceSpec {
        vip: "10.10.1.200:443".into(),
        protocol: "tcp".into(),
        scheduler: "wrr".into(),
        forward: "fullnat".into(),
        nat_gateway: None,
        local_addresses: vec!["10.10.2.1".into()],
        conn_limit: 0,
        synproxy: false,
        proxy_protocol: None,
    };
    let requests = [
        ("services", Request::Services),
        (
            "flows",
            Request::Flows(FlowFilter {
                vip: Some("10.10.1.100:80".into()),
                state: Some("ESTABLISHED".into()),
                limit: Some(10),
                ..FlowFilter::default()
            }),
        ),
        ("stats", Request::Stats),
        ("service-add", Request::ServiceAdd(spec)),
        (
            "backend-add",
            Request::BackendAdd {
                vip: "10.10.1.100:80".into(),
                protocol: "tcp".into(),
                address: "10.10.2.13:8080".into(),
                weight: 3,
            },
        ),
        (
            "backend-set",
            Request::BackendSet {
                vip: "10.10.1.100:80".into(),
                protocol: "tcp".into(),
                address: "10.10.2.11:8080".into(),
                weight: 0,
            },
        ),
        (
            "service-del",
            Request::ServiceDel { vip: "[fd00::1]:80".into(), protocol: "udp".into(), reset: true },
        ),
    ];
    let mut out: Seeds = requests
        .iter()
        .map(|(name, r)| (name.to_string(), (serde_json::to_string(r).unwrap() + "\n").into_bytes()))
        .collect();
    out.push((
        "session".into(),
        b"{\"cmd\":\"stats\"}\n\n{\"cmd\":\"reload\"}\n{\"cmd\":\"nope\"}\n{\"cmd\":".to_vec(),
    ));
    out
}

fn pcap() -> Seeds {
    let frames = frames();
    let mut classic = Vec::new();
    {
        let header = PcapHeader { snaplen: 96, ..PcapHeader::default() };
        let mut w = PcapWriter::with_header(&mut classic, header).unwrap();
        for (i, (_, f)) in frames.iter().enumerate() {
            let cut = &f[..f.len().min(96)];
            w.write_packet(&PcapPacket::new(Duration::from_micros(1_000 + i as u64), f.len() as u32, cut))
                .unwrap();
        }
    }
    let mut nano = Vec::new();
    {
        let header =
            PcapHeader { ts_resolution: pcap_file::TsResolution::NanoSecond, ..PcapHeader::default() };
        let mut w = PcapWriter::with_header(&mut nano, header).unwrap();
        w.write_packet(&PcapPacket::new(Duration::from_nanos(5), frames[0].1.len() as u32, &frames[0].1))
            .unwrap();
    }
    let mut ng = Vec::new();
    {
        let mut w = PcapNgWriter::new(&mut ng).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![],
        })
        .unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 65535,
            options: vec![
                InterfaceDescriptionOption::IfTsResol(9),
                InterfaceDescriptionOption::IfTsOffset(100),
            ],
        })
        .unwrap();
        for (i, (_, f)) in frames.iter().take(3).enumerate() {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: (i % 2) as u32,
                timestamp: Duration::from_nanos(1_700_000_000_000_001 + i as u64),
                original_len: f.len() as u32,
                data: Cow::Borrowed(f),
                options: vec![],
            })
            .unwrap();
        }
        w.write_pcapng_block(SimplePacketBlock {
            original_len: frames[3].1.len() as u32,
            data: Cow::Borrowed(&frames[3].1),
        })
        .unwrap();
    }
    let mut not_ethernet = Vec::new();
    {
        let header = PcapHeader { datalink: DataLink::LINUX_SLL, ..PcapHeader::default() };
        let mut w = PcapWriter::with_header(&mut not_ethernet, header).unwrap();
        w.write_packet(&PcapPacket::new(Duration::ZERO, 4, &[0, 1, 2, 3])).unwrap();
    }
    let cut = ng[..ng.len() - 7].to_vec();
    vec![
        ("classic-snaplen".into(), classic),
        ("classic-nanosecond".into(), nano),
        ("pcapng".into(), ng),
        ("pcapng-cut".into(), cut),
        ("linux-sll".into(), not_ethernet),
    ]
}

fn vfio_user() -> Seeds {
    let bar0 = 0;
    let scratch = rtl_spec::regs::control::BASE + rtl_spec::regs::control::SCRATCH;
    let good = [
        vfio::version(0),
        vfio::device_get_info(1),
        vfio::region_info(2, 0),
        vfio::region_info(3, 7),
        vfio::irq_info(4, 2),
        vfio::region_write(5, bar0, u64::from(scratch), &0x1234_5678u32.to_le_bytes()),
        vfio::region_read(6, bar0, u64::from(scratch), 4),
        vfio::region_read(7, 7, 0, 64),
        vfio::reset(8),
    ]
    .concat();
    let mut short_version = vfio::version(0);
    short_version[4..8].copy_from_slice(&8u32.to_le_bytes());
    let mut no_nul = vfio::version(0);
    no_nul.pop();
    let size = no_nul.len() as u32;
    no_nul[4..8].copy_from_slice(&size.to_le_bytes());
    let mut write_mismatch = vfio::region_write(1, bar0, u64::from(scratch), &[1, 2, 3, 4]);
    write_mismatch[28..32].copy_from_slice(&64u32.to_le_bytes());
    vec![
        ("good-session".into(), good),
        ("version-too-short".into(), short_version),
        ("version-without-nul".into(), no_nul),
        ("write-count-mismatch".into(), [vfio::version(0), write_mismatch].concat()),
        ("huge-read".into(), [vfio::version(0), vfio::region_read(1, bar0, 0, u32::MAX)].concat()),
    ]
}
