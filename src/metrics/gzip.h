// gzip (RFC 1952) of an HTTP answer, for clients that send Accept-Encoding: gzip (Prometheus
// does; prometheus-cpp's Exposer, which metrics::HttpServer replaced, compressed for them too).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fulcrum::metrics {

// The gzip member of `data`, or none if zlib fails (the caller sends it uncompressed).
std::optional<std::string> gzip(std::string_view data);

// Whether an Accept-Encoding header value lists gzip with a q-value above 0.
bool accepts_gzip(std::string_view accept_encoding);

}  // namespace fulcrum::metrics
