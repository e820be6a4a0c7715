// The status page of metrics.listen: `/` is one static HTML document whose inline script polls
// `/status.json` every few seconds and redraws services, backends and drops from it (the data is
// status_view.h's, the same as `fulcrumctl status` and `top`). Rendering only; the daemon wires
// the pages to its HTTP server (http_pages.cpp).
#pragma once

#include <string>
#include <vector>

#include "daemon/status_view.h"

namespace fulcrum::daemon {

// How often the page asks for /status.json (the rates are per second, sampled every second).
inline constexpr int kStatusRefreshMs = 2000;

// The document served at `/`: no external resources, script and style inline (the server's
// Content-Security-Policy allows nothing else).
const std::string& status_html();

// The document served at `/status.json`.
std::string status_json(const StatusView& view, const std::vector<DropView>& drops, const std::string& version,
                        const std::string& time);

}  // namespace fulcrum::daemon
