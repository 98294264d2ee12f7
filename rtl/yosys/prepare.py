#!/usr/bin/env python3
"""Prepares the RTL for Yosys 0.23's SystemVerilog front end, which reads no package import
(neither in a module header nor inside another package): the two packages become one,
sl_types_pkg, and every name a module takes from it is written in full (sl_types_pkg::NAME).
The sources themselves stay ordinary SystemVerilog for Verilator and vendor tools.

usage: prepare.py RTL_DIR OUT_DIR   (writes OUT_DIR/pkg.sv and OUT_DIR/<module>.sv)
"""
import pathlib
import re
import sys

MODULES = ["sl_fifo", "sl_ingress", "sl_parse", "sl_sack", "sl_hash", "sl_lookup",
           "sl_rewrite", "sl_action", "sl_emit", "sl_regs", "sl_fastpath"]


def body(text, name):
    start = text.index(f"package {name};") + len(f"package {name};")
    return text[start:text.index("endpackage")]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rtl, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    spec = (rtl / "generated/sluice_spec_pkg.sv").read_text()
    types = (rtl / "src/sl_types_pkg.sv").read_text()
    pkg = ("package sl_types_pkg;\n" + body(spec, "sluice_spec_pkg")
           + body(types, "sl_types_pkg").replace("import sluice_spec_pkg::*;", "") + "endpackage\n")
    (out / "pkg.sv").write_text(pkg)
    names = set(re.findall(r"localparam [^=;]*?\b(\w+)\s*=", pkg))
    names |= set(re.findall(r",\s*([A-Z][A-Z0-9_]+)\s*=", pkg))
    names |= set(re.findall(r"\}\s*(\w+_t);", pkg))
    names |= set(re.findall(r"function automatic [^(]*?(\w+)\s*\(", pkg))
    for m in MODULES:
        s = (rtl / f"src/{m}.sv").read_text()
        s = s.replace("  import sluice_spec_pkg::*;\n", "").replace("  import sl_types_pkg::*;\n", "")
        s = re.sub(r"(?<![\w:.'`])([A-Za-z_]\w*)\b",
                   lambda x: "sl_types_pkg::" + x.group(1) if x.group(1) in names else x.group(1), s)
        (out / f"{m}.sv").write_text(s)


if __name__ == "__main__":
    main()
