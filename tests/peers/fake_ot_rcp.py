#!/usr/bin/env python3
"""A stock-ot-rcp stand-in built on pyspinel's HDLC and codec, for ferry's cross-implementation
test (tests/radio_pyspinel.rs).

It answers the otbr-agent handshake the way ot-rcp does (shared/reference/spinel.md §4-§5):
RESET -> LAST_STATUS RESET_POWER_ON (TID 0); GETs for PROTOCOL_VERSION 4.3, NCP_VERSION, CAPS,
HWADDR, RCP_API_VERSION, RCP_MIN_HOST_API_VERSION, RADIO_CAPS; SETs echoed as VALUE_IS;
INSERT/REMOVE echoed as VALUE_INSERTED/REMOVED; STREAM_RAW SET -> TX-done with an ACK whose
Frame Pending bit is set. After every SET MAC_RAW_STREAM_ENABLED=1 it sends two unsolicited RX
frames. Options make it reset on its own or exit after N transmissions.

Modes:
  --pty      make a raw pty, print the slave path on stdout (one line), serve on the master
  --stdio    serve on stdin/stdout (run under spinel+hdlc+forkpty://)
Every request is logged as one JSON line to --log.

pyspinel's encode_i(0) returns b"" (a known bug), so packed integers are encoded here; pyspinel's
HDLC encoder escapes only 7E/7D, which every Spinel decoder accepts.
"""

import argparse
import json
import os
import struct
import sys
import tty

from spinel.codec import SpinelCodec
from spinel.hdlc import Hdlc

CMD_RESET, CMD_GET, CMD_SET, CMD_INSERT, CMD_REMOVE = 1, 2, 3, 4, 5
RSP_IS, RSP_INSERTED, RSP_REMOVED = 6, 7, 8
P_LAST_STATUS, P_PROTOCOL_VERSION, P_NCP_VERSION, P_CAPS, P_HWADDR = 0, 1, 2, 5, 8
P_PHY_ENABLED, P_PHY_CHAN, P_LADDR, P_SADDR, P_PANID, P_RAW_STREAM = 0x20, 0x21, 0x34, 0x35, 0x36, 0x37
P_STREAM_RAW = 0x71
P_RCP_API_VERSION, P_RCP_MIN_HOST_API_VERSION = 0xB0, 0xB1
P_RADIO_CAPS = 0x120B
P_SRC_MATCH_ENABLED, P_SRC_MATCH_SHORT, P_SRC_MATCH_EXT = 0x1303, 0x1304, 0x1305
STATUS_OK, STATUS_INVALID_STATE, STATUS_PROP_NOT_FOUND = 0, 4, 13
STATUS_RESET_POWER_ON, STATUS_RESET_SOFTWARE = 112, 114

CAPS = [5, 12, 24, 34, 513, 64, 65]  # what ot-rcp reports
HWADDR = bytes([0x18, 0xB4, 0x30, 0x00, 0x00, 0x12, 0x34, 0x56])
RADIO_CAPS = 0x6F

codec = SpinelCodec()


def pack_i(value):
    """Spinel packed unsigned integer, 0 included."""
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
    """The pyspinel IStream shape over raw file descriptors: read() yields one byte as int."""

    def __init__(self, rfd, wfd):
        self.rfd, self.wfd = rfd, wfd

    def read(self, size=1):
        data = os.read(self.rfd, 1)
        if not data:
            raise EOFError("host closed the line")
        return data[0]

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view):]


def rx_frame_value(psdu, rssi, lqi, channel, timestamp_us, flags=0):
    """STREAM_RAW value in PackRadioFrame layout: d c c S t(CCX) t(i) t(CL)."""
    phy = struct.pack("<BBQ", channel, lqi, timestamp_us)
    vendor = pack_i(0)
    mac = struct.pack("<BL", 0, 0)
    return (struct.pack("<H", len(psdu)) + psdu + struct.pack("<bbH", rssi, -128, flags) +
            struct.pack("<H", len(phy)) + phy + struct.pack("<H", len(vendor)) + vendor +
            struct.pack("<H", len(mac)) + mac)


class FakeRcp:

    def __init__(self, stream, log, reset_after_tx, exit_after_tx):
        self.stream = stream
        self.hdlc = Hdlc(stream)
        self.log = log
        self.reset_after_tx = reset_after_tx
        self.exit_after_tx = exit_after_tx
        self.tx_count = 0
        self.rx_seq = 0
        self.clear()

    def clear(self):
        self.state = {"channel": 11, "pan": 0xFFFF, "saddr": 0xFFFE, "laddr": bytes(8), "phy": 0, "raw": 0,
                      "src_enabled": 0}
        self.src_short = set()
        self.src_ext = set()

    def note(self, entry):
        if self.log:
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()

    def send(self, header, cmd, prop, value=b""):
        frame = bytes([header]) + pack_i(cmd) + pack_i(prop) + value
        self.stream.write(self.hdlc.encode(frame))

    def status(self, header, status):
        self.send(header, RSP_IS, P_LAST_STATUS, pack_i(status))

    def send_rx_frames(self):
        for _ in range(2):
            self.rx_seq += 1
            # Data frame, short addresses, PAN 0x1234, from 0x0042 to 0x0000.
            psdu = bytes([0x41, 0x88, self.rx_seq, 0x34, 0x12, 0x00, 0x00, 0x42, 0x00, 0xAB, 0x00, 0x00])
            value = rx_frame_value(psdu, -58, 222, self.state["channel"], 1234567 + self.rx_seq, flags=0x10)
            self.send(0x80, RSP_IS, P_STREAM_RAW, value)

    def run(self):
        # Boot: ot-rcp announces its reset reason unsolicited.
        self.status(0x80, STATUS_RESET_POWER_ON)
        while True:
            frame = self.hdlc.collect()
            if frame is None:
                self.note({"event": "bad_fcs"})
                continue
            self.handle(frame)

    def handle(self, frame):
        header = frame[0]
        tid = header & 0x0F
        cmd, n = codec.parse_i(frame[1:])
        rest = frame[1 + n:]
        if cmd == 0:  # NOOP (ferry's keepalive)
            self.note({"cmd": "noop", "tid": tid})
            self.status(header, STATUS_OK)
            return
        if cmd == CMD_RESET:
            self.note({"cmd": "reset", "tid": tid})
            self.clear()
            self.status(header, STATUS_RESET_POWER_ON)
            return
        prop, m = codec.parse_i(rest)
        value = rest[m:]
        self.note({"cmd": cmd, "prop": prop, "tid": tid, "value": value.hex()})
        if cmd == CMD_GET:
            self.get(header, prop)
        elif cmd == CMD_SET:
            self.set(header, prop, value)
        elif cmd in (CMD_INSERT, CMD_REMOVE):
            table = self.src_short if prop == P_SRC_MATCH_SHORT else self.src_ext
            key = value.hex()
            if cmd == CMD_INSERT:
                table.add(key)
            else:
                table.discard(key)
            self.send(header, RSP_INSERTED if cmd == CMD_INSERT else RSP_REMOVED, prop, value)
        else:
            self.status(header, 5)  # INVALID_COMMAND

    def get(self, header, prop):
        if prop == P_PROTOCOL_VERSION:
            self.send(header, RSP_IS, prop, pack_i(4) + pack_i(3))
        elif prop == P_NCP_VERSION:
            self.send(header, RSP_IS, prop, b"OPENTHREAD/pyspinel-fake-ot-rcp; RCP\0")
        elif prop == P_CAPS:
            self.send(header, RSP_IS, prop, b"".join(pack_i(c) for c in CAPS))
        elif prop == P_HWADDR:
            self.send(header, RSP_IS, prop, HWADDR)
        elif prop == P_RCP_API_VERSION:
            self.send(header, RSP_IS, prop, pack_i(11))
        elif prop == P_RCP_MIN_HOST_API_VERSION:
            self.send(header, RSP_IS, prop, pack_i(4))
        elif prop == P_RADIO_CAPS:
            self.send(header, RSP_IS, prop, pack_i(RADIO_CAPS))
        else:
            self.status(header, STATUS_PROP_NOT_FOUND)

    def set(self, header, prop, value):
        simple = {P_PHY_ENABLED: ("phy", "b"), P_PHY_CHAN: ("channel", "C"), P_PANID: ("pan", "S"),
                  P_SADDR: ("saddr", "S"), P_LADDR: ("laddr", "E"), P_SRC_MATCH_ENABLED: ("src_enabled", "b")}
        if prop in simple:
            key, fmt = simple[prop]
            self.state[key] = codec.parse_fields(value, fmt)[0]
            self.send(header, RSP_IS, prop, value)
        elif prop == P_RAW_STREAM:
            self.state["raw"] = codec.parse_fields(value, "b")[0]
            self.status(header, STATUS_OK)
            if self.state["raw"]:
                self.send_rx_frames()
        elif prop in (P_SRC_MATCH_SHORT, P_SRC_MATCH_EXT):
            size = 2 if prop == P_SRC_MATCH_SHORT else 8
            entries = {value[i:i + size].hex() for i in range(0, len(value), size)}
            if prop == P_SRC_MATCH_SHORT:
                self.src_short = entries
            else:
                self.src_ext = entries
            self.status(header, STATUS_OK)
        elif prop == P_STREAM_RAW:
            self.transmit(header, value)
        else:
            self.status(header, STATUS_PROP_NOT_FOUND)

    def transmit(self, header, value):
        if not self.state["raw"]:
            self.status(header, STATUS_INVALID_STATE)
            return
        psdu, channel, csma_backoffs, retries, csma, hdr_updated, retx, sec, delay, base, rx_ch, power = \
            codec.parse_fields(value, "dCCCbbbbLLCc")
        self.note({"event": "tx", "psdu": psdu.hex(), "channel": channel, "retries": retries, "csma": csma,
                   "power": power})
        # Logged before the TX-done goes out, so the host has it once it sees the answer.
        self.note({"event": "state", "state": {k: (v.hex() if isinstance(v, bytes) else v)
                                               for k, v in self.state.items()},
                   "src_short": sorted(self.src_short), "src_ext": sorted(self.src_ext)})
        ack_psdu = bytes([0x12, 0x00, psdu[2], 0x00, 0x00])  # ACK with Frame Pending
        ack = rx_frame_value(ack_psdu, -45, 240, channel, 7654321)
        self.send(header, RSP_IS, P_LAST_STATUS, pack_i(STATUS_OK) + bytes([1, 0]) + ack)
        self.tx_count += 1
        if self.exit_after_tx and self.tx_count >= self.exit_after_tx:
            self.note({"event": "exit"})
            sys.exit(0)
        if self.reset_after_tx and self.tx_count == self.reset_after_tx:
            # The chip reboots on its own: tables gone, reset reason announced with TID 0.
            self.note({"event": "reset"})
            self.clear()
            self.status(0x80, STATUS_RESET_SOFTWARE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pty", action="store_true")
    ap.add_argument("--stdio", action="store_true")
    ap.add_argument("--log")
    ap.add_argument("--reset-after-tx", type=int, default=0)
    ap.add_argument("--exit-after-tx", type=int, default=0)
    args = ap.parse_args()
    log = open(args.log, "a") if args.log else None
    if args.pty:
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        print(os.ttyname(slave), flush=True)
        stream = FdStream(master, master)
    else:
        stream = FdStream(0, 1)
    try:
        FakeRcp(stream, log, args.reset_after_tx, args.exit_after_tx).run()
    except (EOFError, OSError):
        pass


if __name__ == "__main__":
    main()
