"""MongoDB wire protocol: just what libmongoc 1.23 speaks to a server.

Requests: OP_QUERY on `<db>.$cmd` (handshake and heartbeats; `$query` unwrapped) and
OP_MSG (kind-0 body plus kind-1 document sequences, optional CRC-32C checksum,
moreToCome).  Replies: OP_REPLY for OP_QUERY, OP_MSG for OP_MSG.  OP_COMPRESSED is never
negotiated (hello does not advertise compression), legacy write opcodes are refused.

Documents decode with CODEC (SON, UUID subtypes kept as Binary, naive datetimes) so every
BSON type round-trips unchanged.
"""

import struct

import bson
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.son import SON

CODEC = CodecOptions(document_class=SON, tz_aware=False,
                     uuid_representation=UuidRepresentation.UNSPECIFIED)

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

MSG_CHECKSUM = 1
MSG_MORE_TO_COME = 2

MAX_MESSAGE = 48000000 + 16 * 1024 * 1024


class ProtocolError(Exception):
    pass


def encode(doc):
    return bson.encode(doc, codec_options=CODEC)


def decode(data):
    # Note: python3-bson 3.11 rejects binary subtype 3/4 values that are not 16 bytes
    # long and dates outside datetime's range (years 1..9999); such requests fail.
    return bson.decode(data, codec_options=CODEC)


class Request(object):
    """One decoded command request."""

    def __init__(self, request_id, opcode, db, cmd, more_to_come=False, error=None):
        self.request_id = request_id
        self.opcode = opcode
        self.db = db
        self.cmd = cmd
        self.more_to_come = more_to_come
        self.error = error      # set when the message framed fine but its BSON did not decode


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _cstring(data, pos):
    end = data.index(b"\x00", pos)
    return data[pos:end].decode("utf-8"), end + 1


def read_request(sock):
    """Read one message; None on EOF. Raises ProtocolError on junk."""
    header = _recv_exact(sock, 16)
    if header is None:
        return None
    length, request_id, _response_to, opcode = struct.unpack("<iiii", header)
    if length < 16 or length > MAX_MESSAGE:
        raise ProtocolError("bad message length %d" % length)
    body = _recv_exact(sock, length - 16)
    if body is None:
        return None
    if opcode not in (OP_QUERY, OP_MSG):
        raise ProtocolError("unsupported opcode %d" % opcode)
    try:
        if opcode == OP_QUERY:
            return _parse_query(request_id, body)
        return _parse_msg(request_id, body)
    except ProtocolError:
        raise
    except Exception as e:  # undecodable BSON: answer with an error, keep the connection
        more = opcode == OP_MSG and bool(struct.unpack_from("<I", body, 0)[0] & MSG_MORE_TO_COME)
        return Request(request_id, opcode, "admin", None, more, error="%s: %s"
                       % (type(e).__name__, e))


def _parse_query(request_id, body):
    pos = 4  # flags
    full_name, pos = _cstring(body, pos)
    pos += 8  # numberToSkip, numberToReturn
    (doc_len,) = struct.unpack_from("<i", body, pos)
    cmd = decode(body[pos:pos + doc_len])
    if not full_name.endswith(".$cmd"):
        raise ProtocolError("OP_QUERY is only supported on $cmd collections")
    db = full_name[:-len(".$cmd")]
    if "$query" in cmd:
        cmd = cmd["$query"]
    elif "query" in cmd and len(cmd) > 0 and next(iter(cmd)) == "query":
        cmd = cmd["query"]
    return Request(request_id, OP_QUERY, db, cmd)


def _parse_msg(request_id, body):
    (flags,) = struct.unpack_from("<I", body, 0)
    end = len(body) - (4 if flags & MSG_CHECKSUM else 0)
    pos = 4
    cmd = None
    sequences = []
    while pos < end:
        kind = body[pos]
        pos += 1
        if kind == 0:
            (doc_len,) = struct.unpack_from("<i", body, pos)
            cmd = decode(body[pos:pos + doc_len])
            pos += doc_len
        elif kind == 1:
            (sec_len,) = struct.unpack_from("<i", body, pos)
            sec_end = pos + sec_len
            ident, p = _cstring(body, pos + 4)
            docs = []
            while p < sec_end:
                (doc_len,) = struct.unpack_from("<i", body, p)
                docs.append(decode(body[p:p + doc_len]))
                p += doc_len
            sequences.append((ident, docs))
            pos = sec_end
        else:
            raise ProtocolError("unknown OP_MSG section kind %d" % kind)
    if cmd is None:
        raise ProtocolError("OP_MSG without a body section")
    for ident, docs in sequences:
        cmd[ident] = docs
    db = cmd.get("$db", "admin")
    return Request(request_id, OP_MSG, db, cmd, bool(flags & MSG_MORE_TO_COME))


_request_counter = [0]


def _next_id():
    _request_counter[0] = (_request_counter[0] + 1) & 0x7FFFFFFF
    return _request_counter[0]


def build_reply(request, reply_doc):
    """Encode reply_doc as OP_REPLY or OP_MSG matching the request."""
    data = encode(reply_doc)
    if request.opcode == OP_QUERY:
        body = struct.pack("<iqii", 0, 0, 0, 1) + data
        opcode = OP_REPLY
    else:
        body = struct.pack("<I", 0) + b"\x00" + data
        opcode = OP_MSG
    header = struct.pack("<iiii", 16 + len(body), _next_id(), request.request_id, opcode)
    return header + body
