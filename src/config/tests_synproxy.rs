//! The SYN proxy's keys: `synproxy` on TCP services only, and `synproxy_wscale` and
//! `synproxy_timestamps` in range, defaulted, and refused where no proxy would use them.

use super::tests_errors::{bad, bad_at, base_with};
use super::*;

/// BASE's service with `keys` added (and a LIP, which every FullNAT service needs).
fn with(keys: &str) -> String {
    base_with("local_addresses = [\"10.10.2.1\"]", &format!("{keys}\nlocal_addresses = [\"10.10.2.1\"]"))
}

#[test]
fn a_syn_proxy_is_for_tcp_services_only() {
    let udp = with("protocol = \"udp\"\nsynproxy = true");
    bad(&udp, &["service[0].synproxy = true on 10.10.1.100:80/udp: only TCP services have a SYN proxy"]);
    let tcp = with("synproxy = true");
    assert!(parse(&tcp, "sluice.toml").unwrap().services[0].synproxy);
    bad(&with("synproxy = \"yes\""), &["synproxy"]);
}

#[test]
fn the_proxys_options_default_to_timestamps_and_linuxs_window_scale() {
    let s = &parse(&with("synproxy = true"), "sluice.toml").unwrap().services[0];
    assert_eq!((s.synproxy_wscale, s.synproxy_timestamps), (7, true));
    let text = with("synproxy = true\nsynproxy_wscale = 14\nsynproxy_timestamps = false");
    let s = &parse(&text, "sluice.toml").unwrap().services[0];
    assert_eq!((s.synproxy_wscale, s.synproxy_timestamps), (14, false));
    let s = &parse(&with("synproxy = true\nsynproxy_wscale = 0"), "sluice.toml").unwrap().services[0];
    assert_eq!(s.synproxy_wscale, 0, "scale 0: the option is offered with no shift");
}

#[test]
fn the_proxys_options_are_checked() {
    for v in ["15", "-1", "255"] {
        let text = with(&format!("synproxy = true\nsynproxy_wscale = {v}"));
        bad_at(&text, "synproxy_wscale", &["service[0].synproxy_wscale", v, "from 0 to 14", "window scale"]);
    }
    bad(&with("synproxy = true\nsynproxy_wscale = \"7\""), &["synproxy_wscale"]);
    bad(&with("synproxy = true\nsynproxy_timestamps = 1"), &["synproxy_timestamps"]);
    // Without the proxy they would promise something that never happens.
    for key in ["synproxy_wscale = 7", "synproxy_timestamps = true"] {
        let name = key.split(' ').next().unwrap();
        for proxy in ["", "synproxy = false\n"] {
            let text = with(&format!("{proxy}{key}"));
            bad_at(&text, name, &[&format!("service[0].{name} is set but service[0].synproxy is not true")]);
        }
    }
}
