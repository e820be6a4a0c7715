// metrics::Scrape (scrape.h).
#include "metrics/scrape.h"

#include <prometheus/text_serializer.h>

#include <malloc.h>

#include <chrono>
#include <ostream>
#include <streambuf>
#include <string>

namespace fulcrum::metrics {
namespace {

// An ostream target that appends to a string through a small buffer. The text is written once,
// where it stays: an ostringstream would hold it twice at the end (its buffer and the copy str()
// returns), tens of MiB at 10,000 backends.
class AppendToString : public std::streambuf {
public:
    explicit AppendToString(std::string& out) : out_(out) { setp(buffer_, buffer_ + sizeof buffer_); }
    ~AppendToString() override { flush(); }

protected:
    int_type overflow(int_type c) override
    {
        flush();
        if (!traits_type::eq_int_type(c, traits_type::eof())) {
            *pptr() = traits_type::to_char_type(c);
            pbump(1);
        }
        return traits_type::not_eof(c);
    }
    int sync() override
    {
        flush();
        return 0;
    }

private:
    void flush()
    {
        out_.append(pbase(), static_cast<std::size_t>(pptr() - pbase()));
        setp(buffer_, buffer_ + sizeof buffer_);
    }

    std::string& out_;
    char buffer_[8192];
};

}  // namespace

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
    // Room for a scrape like the last one, so the text is not copied as it grows.
    page.body.reserve(last_size_ + last_size_ / 8);
    {
        // One family at a time: each is serialised and freed before the next, so the families
        // (tens of MiB of small blocks at 10,000 backends) never all live beside the text. The
        // text is the same as serialising them all at once: the format has nothing between
        // families.
        AppendToString sink(page.body);
        std::ostream out(&sink);
        const prometheus::TextSerializer serializer;
        std::vector<prometheus::MetricFamily> one(1);  // not `{family}`: a braced list copies
        for (const auto& c : collectables_) {
            std::vector<prometheus::MetricFamily> families = c->Collect();
            for (prometheus::MetricFamily& f : families) {
                one[0] = std::move(f);
                serializer.Serialize(out, one);
                one[0] = {};
            }
        }
        out.flush();
    }
    last_size_ = page.body.size();
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
