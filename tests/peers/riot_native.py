#!/usr/bin/env python3
"""An independent RIOT SUIT node over kernel UDP (aiocoap, cbor2, cryptography), as RIOT's
examples/advanced/suit_update behaves on the native64 board (shared/reference/suit.md §1.1,
§1.3, §1.7), for ferry's kernel-device tests.

  riot_native.py --key HEX --seq N [--board native64] [--slots] [--ferry-status] [--port P]

Serves /suit/trigger (POST: the manifest URL read as a C string), /riot/board, /suit/version
("NONE"), /suit/slot/active + /suit/slot/inactive only with --slots (riotboot), and
/ferry/status (CBOR {"installed": [seq], "free_storage": bytes}) only with --ferry-status. A trigger
fetches the manifest from the URL with Block2 at 64 bytes from block 0 (≤ 640 bytes), checks
its COSE_Sign1 (Ed25519, draft-09: the payload is [2, SHA-256 of the manifest bstr]), vendor,
class and sequence number (strictly higher than the running one), then fetches the payload the
signed URI names for its slot, block-wise, and checks size and digest. On success it "installs":
the running sequence number changes, and with --slots the active slot flips after a reboot.

Prints one line per event on stdout: "listening PORT", "triggered URL", "fetched PATH BYTES
BLOCKS", "installed SEQ slot S", "rejected: WHY". Requests go out from the node's own socket.
"""
import argparse
import asyncio
import hashlib
import socket
import sys
import uuid

import aiocoap
import aiocoap.resource as resource
import cbor2
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MANIFEST_MAX = 640  # SUIT_MANIFEST_BUFSIZE
URL_MAX = 128  # CONFIG_SOCK_URLPATH_MAXLEN
SZX = 2  # CONFIG_SUIT_COAP_BLOCKSIZE: 64 bytes
REBOOT_S = 0.5


def say(*words):
    print(*words, flush=True)


class Node:
    def __init__(self, args):
        self.key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(args.key))
        self.board = args.board
        self.seq = args.seq
        self.slots = args.slots
        self.ferry_status = args.ferry_status
        self.active = 0
        self.ctx = None
        self.busy = False
        vendor = uuid.uuid5(uuid.NAMESPACE_DNS, "riot-os.org")
        self.vendor = vendor.bytes
        self.klass = uuid.uuid5(vendor, args.board).bytes

    async def get_blockwise(self, url, limit):
        body, num = b"", 0
        while True:
            msg = aiocoap.Message(code=Code.GET, uri=url)
            msg.opt.block2 = BlockOption.BlockwiseTuple(num, 0, SZX)
            r = await asyncio.wait_for(self.ctx.request(msg, handle_blockwise=False).response, 60)
            if not r.code.is_successful():
                raise RuntimeError(f"{url}: {r.code}")
            b = r.opt.block2
            if b is None:
                return r.payload, 1
            if b.size_exponent > SZX:
                raise RuntimeError(f"{url}: block larger than asked (SZX {b.size_exponent})")
            body += r.payload
            if len(body) > limit:
                raise RuntimeError(f"{url}: more than {limit} bytes")
            if not b.more:
                return body, num + 1
            num += 1

    def check_manifest(self, envelope):
        env = cbor2.loads(envelope)
        manifest_bstr = cbor2.dumps(env[3])
        want = cbor2.dumps([2, hashlib.sha256(manifest_bstr).digest()])
        for block in cbor2.loads(env[2]):
            sign1 = cbor2.loads(block)
            if isinstance(sign1, cbor2.CBORTag):
                sign1 = sign1.value
            protected, _, payload, signature = sign1
            if payload != want:
                raise RuntimeError("manifest digest mismatch")
            to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
            self.key.verify(signature, to_be_signed)  # raises InvalidSignature
        manifest = cbor2.loads(env[3])
        return manifest

    def parameters(self, manifest, slot):
        """The parameters in force for `slot`: top-level ones, then the slot's try-each branch."""
        params = {}

        def walk(seq_bstr):
            seq = cbor2.loads(seq_bstr)
            for i in range(0, len(seq) - 1, 2):
                cmd, arg = seq[i], seq[i + 1]
                if cmd in (19, 20) and isinstance(arg, dict):
                    params.update(arg)
                elif cmd == 15 and isinstance(arg, list) and arg:
                    walk(arg[min(slot, len(arg) - 1)])

        common = cbor2.loads(manifest[3])
        walk(common[4])
        walk(manifest[9])
        return params

    async def update(self, url):
        self.busy = True
        try:
            envelope, blocks = await self.get_blockwise(url, MANIFEST_MAX)
            say("fetched", url, len(envelope), blocks)
            manifest = self.check_manifest(envelope)
            seq = manifest[2]
            if seq <= self.seq:
                return say(f"rejected: seq_nr <= running image ({seq} <= {self.seq})")
            slot = 1 - self.active if self.slots else 0
            params = self.parameters(manifest, slot)
            if params.get(1) != self.vendor or params.get(2) != self.klass:
                return say("rejected: vendor or class does not match", self.board)
            uri, size = params[21], params[14]
            digest = cbor2.loads(params[3])[1]
            image, blocks = await self.get_blockwise(uri, size)
            say("fetched", uri, len(image), blocks)
            if len(image) != size or hashlib.sha256(image).digest() != digest:
                return say("rejected: image size or digest mismatch")
            await asyncio.sleep(REBOOT_S)
            self.seq = seq
            self.active = slot
            say("installed", seq, "slot", slot)
        except Exception as e:  # a failed update leaves the node as it was, like RIOT
            say("rejected:", repr(e))
        finally:
            self.busy = False


class Trigger(resource.Resource):
    def __init__(self, node):
        super().__init__()
        self.node = node

    async def render_post(self, request):
        payload = request.payload
        if not payload:
            return aiocoap.Message(code=Code.REQUEST_ENTITY_INCOMPLETE)
        if len(payload) >= URL_MAX:
            return aiocoap.Message(code=Code.REQUEST_ENTITY_TOO_LARGE)
        url = payload.split(b"\0", 1)[0].decode()
        say("triggered", url)
        if not self.node.busy:
            asyncio.get_running_loop().create_task(self.node.update(url))
        return aiocoap.Message(code=Code.CREATED)

    render_put = render_post


class FerryStatus(resource.Resource):
    def __init__(self, node):
        super().__init__()
        self.node = node

    async def render_get(self, request):
        status = {"installed": [self.node.seq], "free_storage": 1 << 20}
        return aiocoap.Message(payload=cbor2.dumps(status), content_format=60)


class Text(resource.Resource):
    def __init__(self, value):
        super().__init__()
        self.value = value

    async def render_get(self, request):
        return aiocoap.Message(payload=self.value().encode(), content_format=0)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--board", default="native64")
    parser.add_argument("--slots", action="store_true")
    parser.add_argument("--ferry-status", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    node = Node(args)
    port = args.port
    if port == 0:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    site = resource.Site()
    site.add_resource(["suit", "trigger"], Trigger(node))
    site.add_resource(["riot", "board"], Text(lambda: node.board))
    site.add_resource(["suit", "version"], Text(lambda: "NONE"))
    if node.slots:
        site.add_resource(["suit", "slot", "active"], Text(lambda: str(node.active)))
        site.add_resource(["suit", "slot", "inactive"], Text(lambda: str(1 - node.active)))
    if node.ferry_status:
        site.add_resource(["ferry", "status"], FerryStatus(node))
    site.add_resource([".well-known", "core"], resource.WKCResource(site.get_resources_as_linkheader))
    node.ctx = await aiocoap.Context.create_server_context(site, bind=("::1", port))
    say("listening", port)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
