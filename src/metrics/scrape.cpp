// metrics::Scrape (scrape.h).
#include "metrics/scrape.h"

#include <prometheus/text_serializer.h>

#include <malloc.h>

#include <chrono>

namespace fulcrum::metrics {

// The names, help texts and quantiles of prometheus-cpp 1.0's own scrape metrics.
Scrape::Scrape(std::vector<std::shared_ptr<prometheus::Collectable>> collectables)
    : collectables_(std::move(collectables)),
      bytes_(prometheus::BuildCounter()
                 .Name("exposer_transferred_bytes_total")
                 .Help("Transferred bytes to metrics services")
                 .Register(*own_)
                 .Add({})),
      scrapes_(prometheus::BuildCounter()
                   .Name("exposer_scrapes_total")
                   .Help("Number of times metrics were scraped")
                   .Register(*own_)
                   .Add({})),
      latencies_(prometheus::BuildSummary()
                     .Name("exposer_request_latencies")
                     .Help("Latencies of serving scrape requests, in microseconds")
                     .Register(*own_)
                     .Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.9, 0.01}, {0.99, 0.001}}))
{
    collectables_.insert(collectables_.begin(), own_);
}

HttpHandler Scrape::handler()
{
    return [this](HttpRespond respond) { respond(serve()); };
}

HttpPage Scrape::serve()
{
    const auto start = std::chrono::steady_clock::now();
    HttpPage page{"text/plain; charset=utf-8", ""};
    {
        std::vector<prometheus::MetricFamily> families;
        for (const auto& c : collectables_) {
            std::vector<prometheus::MetricFamily> more = c->Collect();
            families.insert(families.end(), std::make_move_iterator(more.begin()),
                            std::make_move_iterator(more.end()));
        }
        page.body = prometheus::TextSerializer().Serialize(families);
    }
    // The families were tens of MiB of small blocks at 10,000 backends, in this thread's malloc
    // arena; glibc keeps freed arena pages, so without this the daemon's RSS stays at the size of
    // the largest scrape (measured: two arenas of 31 MiB each under health_bench's scrapes).
    malloc_trim(0);
    latencies_.Observe(static_cast<double>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count()));
    bytes_.Increment(static_cast<double>(page.body.size()));
    scrapes_.Increment();
    return page;
}

}  // namespace fulcrum::metrics
