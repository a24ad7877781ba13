#!/usr/bin/env python3
"""An otbr-agent-style Spinel host built on pyspinel's HDLC and codec, driving ferry's RCP core
(served by tests/radio_pyspinel.rs on a pty) through the start-up handshake of
shared/reference/spinel.md §5, the configuration, a source-match insert and one transmission.

Usage: otbr_host.py /dev/pts/N
Prints one JSON object with what it learned and exits 0, or prints the failure and exits 1.
"""

import json
import os
import select
import struct
import sys
import tty

from spinel.codec import SpinelCodec
from spinel.hdlc import Hdlc

codec = SpinelCodec()
TIMEOUT_S = 2.0  # OpenThread's kMaxWaitTime


def pack_i(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class FdStream:

    def __init__(self, fd):
        self.fd = fd

    def read(self, size=1):
        ready, _, _ = select.select([self.fd], [], [], TIMEOUT_S)
        if not ready:
            raise TimeoutError("the RCP did not answer within 2 s")
        data = os.read(self.fd, 1)
        if not data:
            raise EOFError("the RCP closed the line")
        return data[0]

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]


class Host:

    def __init__(self, fd):
        self.stream = FdStream(fd)
        self.hdlc = Hdlc(self.stream)
        self.tid = 0

    def next_tid(self):
        self.tid = 1 if self.tid >= 15 else self.tid + 1
        return self.tid

    def send(self, header, cmd, payload):
        self.stream.write(self.hdlc.encode(bytes([header]) + pack_i(cmd) + payload))

    def receive(self):
        """Next good frame as (tid, cmd, prop, value)."""
        while True:
            frame = self.hdlc.collect()
            if frame is None:
                continue
            cmd, n = codec.parse_i(frame[1:])
            prop, m = codec.parse_i(frame[1 + n:])
            return frame[0] & 0x0F, cmd, prop, frame[1 + n + m:]

    def request(self, cmd, prop, value=b"", tid=None):
        tid = self.next_tid() if tid is None else tid
        self.send(0x80 | tid, cmd, pack_i(prop) + value)
        while True:
            rtid, rcmd, rprop, rvalue = self.receive()
            if rtid == tid:
                return rcmd, rprop, rvalue

    def get(self, prop, tid=None):
        cmd, rprop, value = self.request(2, prop, tid=tid)
        if cmd != 6 or rprop != prop:
            raise RuntimeError("GET %#x answered with cmd %d prop %#x %s" % (prop, cmd, rprop, value.hex()))
        return value

    def set(self, prop, value):
        cmd, rprop, rvalue = self.request(3, prop, value)
        ok = (cmd == 6 and rprop == prop) or (cmd == 6 and rprop == 0 and codec.parse_i(rvalue)[0] == 0)
        if not ok:
            raise RuntimeError("SET %#x refused: cmd %d prop %#x %s" % (prop, cmd, rprop, rvalue.hex()))


def main():
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    host = Host(fd)
    out = {}
    # 1. Reset: 80 01 02, then wait for LAST_STATUS RESET_* ignoring everything else.
    host.send(0x80, 1, bytes([2]))
    while True:
        tid, cmd, prop, value = host.receive()
        if cmd == 6 and prop == 0 and 112 <= codec.parse_i(value)[0] <= 128:
            out["reset_status"] = codec.parse_i(value)[0]
            break
    # 2.-4. SpinelDriver's queries with TID 1.
    version = host.get(1, tid=1)
    major, n = codec.parse_i(version)
    minor, _ = codec.parse_i(version[n:])
    if (major, minor) != (4, 3):
        raise RuntimeError("protocol %d.%d" % (major, minor))
    out["protocol"] = [major, minor]
    out["ncp_version"] = host.get(2, tid=1).rstrip(b"\0").decode()
    caps_raw = host.get(5, tid=1)
    caps = []
    while caps_raw:
        c, n = codec.parse_i(caps_raw)
        caps.append(c)
        caps_raw = caps_raw[n:]
    if 34 not in caps or 513 not in caps:
        raise RuntimeError("caps %s lack CONFIG_RADIO or MAC_RAW" % caps)
    out["caps"] = caps
    host.tid = 1
    # 5. RadioSpinel: HWADDR, RCP API versions, RADIO_CAPS.
    out["hwaddr"] = host.get(8).hex()
    out["rcp_api"] = codec.parse_i(host.get(0xB0))[0]
    out["min_host_api"] = codec.parse_i(host.get(0xB1))[0]
    if out["rcp_api"] < 4 or out["min_host_api"] > 11:
        raise RuntimeError("RCP API versions incompatible")
    out["radio_caps"] = codec.parse_i(host.get(0x120B))[0]
    # Enable and configure.
    host.set(0x20, b"\x01")
    host.set(0x36, struct.pack("<H", 0x1234))
    host.set(0x35, struct.pack("<H", 0x0000))
    host.set(0x34, bytes(range(1, 9)))
    host.set(0x21, b"\x0f")
    host.set(0x37, b"\x01")
    host.set(0x1303, b"\x01")
    cmd, prop, value = host.request(4, 0x1304, struct.pack("<H", 0x0042))
    out["src_match_insert"] = [cmd, prop, value.hex()]
    # Transmit: d C C C b b b b L L C c, ACK requested.
    psdu = bytes([0x61, 0x88, 0x07, 0x34, 0x12, 0x42, 0x00, 0x00, 0x00, 0x68, 0x69, 0x00, 0x00])
    tx = struct.pack("<H", len(psdu)) + psdu + struct.pack("<BBBBBBBLLBb", 15, 4, 3, 1, 0, 0, 0, 0, 0, 15, 127)
    cmd, prop, value = host.request(3, 0x71, tx)
    if cmd != 6 or prop != 0:
        raise RuntimeError("TX answered with cmd %d prop %#x" % (cmd, prop))
    status, n = codec.parse_i(value)
    fp, hdr = value[n], value[n + 1]
    ack = codec.parse_fields(value[n + 2:], "dccSt(CCX)t(i)t(CL)")
    out["tx_done"] = {"status": status, "frame_pending": fp, "header_updated": hdr, "ack_psdu": ack[0].hex(),
                      "ack_rssi": ack[1], "ack_lqi": ack[4][1]}
    # An unsolicited RX frame the test injects after the TX.
    while True:
        tid, cmd, prop, value = host.receive()
        if tid == 0 and cmd == 6 and prop == 0x71:
            rx = codec.parse_fields(value, "dccSt(CCX)t(i)t(CL)")
            out["rx"] = {"psdu": rx[0].hex(), "rssi": rx[1], "flags": rx[3], "channel": rx[4][0], "lqi": rx[4][1],
                         "timestamp": rx[4][2]}
            break
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the test prints this
        print("otbr_host failed: %r" % (e,), flush=True)
        sys.exit(1)
