// Daemon::start_http: what metrics.listen serves. /metrics is made on the HTTP server's thread
// (the collector reads the maps itself, under its own lock); the status data is the event loop's,
// so /status.json is made there and handed back (metrics/http_server.h).
#include <ctime>

#include "daemon/daemon.h"
#include "daemon/daemon_impl.h"
#include "daemon/status_page.h"
#include "metrics/scrape.h"

namespace fulcrum::daemon {

Status Daemon::start_http(const std::string& listen)
{
    scrape_ = std::make_unique<metrics::Scrape>(std::vector<std::shared_ptr<prometheus::Collectable>>{collector_});
    std::map<std::string, metrics::HttpHandler> pages;
    pages["/metrics"] = scrape_->handler();
    pages["/"] = [](metrics::HttpRespond respond) { respond({"text/html; charset=utf-8", status_html()}); };
    pages["/status.json"] = [this](metrics::HttpRespond respond) {
        boost::asio::post(io_, [this, respond = std::move(respond)] {
            const std::time_t now = std::time(nullptr);
            char stamp[32];
            std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
            respond({"application/json", status_json(status_view(), drop_view(), kVersion, stamp)});
        });
    };
    Result<std::unique_ptr<metrics::HttpServer>> server = metrics::HttpServer::start(listen, std::move(pages));
    if (!server.ok())
        return server.status();
    http_ = std::move(server).value();
    return {};
}

}  // namespace fulcrum::daemon
