"""The lab's backend servers, on every address (IPv4 and IPv6), until killed:
  - HTTP on TCP_PORT, answering every GET with NAME;
  - a UDP responder on UDP_PORT, answering every datagram with NAME (from the VIP it was sent to);
  - a line echo on TCP port 7 for long-lived connections: each line comes back as "NAME line".
Usage: lab_server.py NAME TCP_PORT UDP_PORT"""
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler

NAME, TCP_PORT, UDP_PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (NAME + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class DualStackHTTP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve_udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    # Answer from the address the request was sent to (the VIP), as DSR requires.
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    s.setsockopt(socket.SOL_IP, 8, 1)  # IP_PKTINFO, for IPv4-mapped requests
    s.bind(("::", UDP_PORT))
    while True:
        data, ancillary, _, peer = s.recvmsg(2048, 1024)
        s.sendmsg([(NAME + "\n").encode()], [a for a in ancillary
                                             if a[1] in (socket.IPV6_PKTINFO, 8)], 0, peer)


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(NAME.encode() + b" " + line)
            self.wfile.flush()


class DualStackEcho(DualStackHTTP):
    pass


threading.Thread(target=serve_udp, daemon=True).start()
threading.Thread(target=DualStackEcho(("::", 7), Echo).serve_forever, daemon=True).start()
DualStackHTTP(("::", TCP_PORT), Handler).serve_forever()
