"""Extra backend servers for the health-check system tests, until killed:

  health_servers.py https PORT CERT KEY NAME   HTTPS (TLS) on every IPv4 address, GET -> 200 NAME
  health_servers.py plain PORT NAME            plain HTTP on PORT (a TLS client fails its handshake)
  health_servers.py dns PORT GOOD_NAME         DNS over UDP: NOERROR with one A record for GOOD_NAME
                                               (any case), NXDOMAIN for any other name
"""
import socket
import socketserver
import ssl
import struct
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def http_server(port, name, context=None):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = (name + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, HTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    srv = Server(("0.0.0.0", port), Handler)
    if context:
        srv.socket = context.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


def qname(msg, pos):
    labels = []
    while msg[pos]:
        n = msg[pos]
        labels.append(msg[pos + 1:pos + 1 + n].decode(errors="replace"))
        pos += 1 + n
    return ".".join(labels), pos + 1


def dns_server(port, good):
    # Answers from the address it was asked at (IP_PKTINFO), as a DNS server behind a balancer
    # must: asked at the VIP (a client's or a check's query through the tunnel), a reply from the
    # host's own address would not reach the asker's connected socket.
    ip_pktinfo = 8
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_IP, ip_pktinfo, 1)
    s.bind(("0.0.0.0", port))
    while True:
        msg, ancillary, _, peer = s.recvmsg(512, socket.CMSG_SPACE(12))
        if len(msg) < 17:
            continue
        name, end = qname(msg, 12)
        question = msg[12:end + 4]
        ok = name.lower().rstrip(".") == good.lower().rstrip(".")
        flags = 0x8000 | (0x0100 & struct.unpack("!H", msg[2:4])[0]) | 0x0080 | (0 if ok else 3)
        answer = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])) if ok else b""
        reply = msg[:2] + struct.pack("!HHHHH", flags, 1, 1 if ok else 0, 0, 0) + question + answer
        # in_pktinfo {ifindex, spec_dst, addr}: reply from spec_dst, on any interface.
        local = [d[4:8] for level, kind, d in ancillary if level == socket.SOL_IP and kind == ip_pktinfo]
        control = [(socket.SOL_IP, ip_pktinfo, struct.pack("@i4s4s", 0, local[0], bytes(4)))] if local else []
        s.sendmsg([reply], control, 0, peer)

if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "https":
        port, cert, key, name = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        http_server(port, name, ctx)
    elif kind == "plain":
        http_server(int(sys.argv[2]), sys.argv[3])
    elif kind == "dns":
        dns_server(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(f"unknown server kind {kind}")
