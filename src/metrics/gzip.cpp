// metrics::gzip (gzip.h), over zlib's deflate.
#include "metrics/gzip.h"

#include <zlib.h>

#include <cctype>

namespace fulcrum::metrics {

std::optional<std::string> gzip(std::string_view data)
{
    z_stream zs{};
    // 16 + MAX_WBITS: a gzip header and trailer around the deflate stream.
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return std::nullopt;
    std::string out(deflateBound(&zs, static_cast<uLong>(data.size())), '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&zs, Z_FINISH);  // deflateBound: one call always fits
    out.resize(zs.total_out);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END)
        return std::nullopt;
    return out;
}

bool accepts_gzip(std::string_view value)
{
    // Comma-separated codings, each maybe with ";q=..."; "gzip;q=0" refuses it.
    std::size_t start = 0;
    while (start <= value.size()) {
        std::size_t end = value.find(',', start);
        if (end == std::string_view::npos)
            end = value.size();
        std::string_view item = value.substr(start, end - start);
        std::size_t semi = item.find(';');
        std::string_view coding = item.substr(0, semi);
        while (!coding.empty() && std::isspace(static_cast<unsigned char>(coding.front())))
            coding.remove_prefix(1);
        while (!coding.empty() && std::isspace(static_cast<unsigned char>(coding.back())))
            coding.remove_suffix(1);
        if (coding.size() == 4 && (coding == "gzip" || coding == "GZIP" || coding == "Gzip")) {
            if (semi == std::string_view::npos)
                return true;
            std::string_view params = item.substr(semi + 1);
            std::size_t q = params.find("q=");
            if (q == std::string_view::npos)
                return true;
            std::string_view qv = params.substr(q + 2);
            // q=0, q=0.0, q=0.000 refuse; anything else accepts.
            bool zero = !qv.empty() && qv.front() == '0';
            for (std::size_t i = 1; zero && i < qv.size() && !std::isspace(static_cast<unsigned char>(qv[i])); i++)
                zero = qv[i] == '.' || qv[i] == '0';
            return !zero;
        }
        start = end + 1;
    }
    return false;
}

}  // namespace fulcrum::metrics
