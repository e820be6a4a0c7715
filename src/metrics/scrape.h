// The /metrics page: every collectable serialised in the Prometheus text format, run on the HTTP
// server's thread. It serves what prometheus-cpp's Exposer served before it (the same families in
// the same order, its own exposer_* scrape statistics first), so scrapers and dashboards see no
// change.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/summary.h>

#include <memory>
#include <mutex>
#include <vector>

#include "metrics/http_server.h"

namespace fulcrum::metrics {

class Scrape {
public:
    explicit Scrape(std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
    // The handler for HttpServer; the Scrape must outlive the server.
    HttpHandler handler();

private:
    HttpPage serve();

    std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
    std::shared_ptr<prometheus::Registry> own_ = std::make_shared<prometheus::Registry>();
    prometheus::Counter& bytes_;
    prometheus::Counter& scrapes_;
    prometheus::Summary& latencies_;
    std::size_t last_size_ = 0;  // bytes of the last page (the HTTP thread is the only caller)
};

}  // namespace fulcrum::metrics
