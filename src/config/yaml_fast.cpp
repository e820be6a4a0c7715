// The fast scanner of the block-YAML subset (see yaml_fast.h). Each rule below says which yaml-cpp
// 0.7 behaviour it reproduces (src/scanner.cpp, scantoken.cpp, scanscalar.cpp, singledocparser.cpp
// of yaml-cpp); where reproducing it would take more than a few lines, it gives up instead.
// tests/unit/test_yaml_fast.cpp and the config fuzzer hold its trees to yaml-cpp's.
#include "config/yaml_fast.h"

#include <string>
#include <vector>

#include "config/yaml_load.h"

namespace fulcrum::config::detail {
namespace {

// Thrown to give up; caught by fast_tree only.
struct GiveUp {};
[[noreturn]] void give_up()
{
    throw GiveUp{};
}

// yaml-cpp drops a simple key whose ':' is more than 1024 bytes after its start; stay clear of it.
constexpr std::size_t kMaxKeyBytes = 1000;

// A first character that starts a plain scalar in block and flow context alike and ends nothing
// (not an indicator of YAML's: - ? : , [ ] { } # & * ! | > ' " % @ `).
bool safe_start(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80) return true;
    switch (c) {
    case '_': case '.': case '/': case '~': case '+': case '$': case '(': case '=': case '<': case '^':
    case ';': case '\\':
        return true;
    default:
        return false;
    }
}

class Scanner {
public:
    explicit Scanner(std::string_view text) : s_(text) {}

    FastTree run()
    {
        check_bytes();
        skip_to_next_token(/*document_start_allowed=*/true);
        // A leading "---" (yaml-cpp: DocStart is "---" then a blank, a break or the end).
        if (!eof() && column() == 0 && s_.compare(p_, 3, "---") == 0 && blank_or_eol(p_ + 3)) {
            p_ += 3;
            end_of_line();
        }
        skip_to_next_token(false);
        if (eof() || column() != 0 || block_entry()) give_up();  // empty, indented or a list at the top
        block();
        return FastTree{builder_.take(), nodes_};
    }

private:
    struct Scalar {
        std::string_view text;
        bool plain = false;
        enum End { colon, comment, eol, other } end = other;  // what follows it (colon: at the ':')
    };
    struct Frame {
        bool mapping;
        int column;
        bool indentless;  // a sequence at its key's column ("key:\n- a")
    };

    // Only what yaml-cpp reads byte for byte as UTF-8 text: no control characters (yaml-cpp's
    // stream ends at 0x04, guesses UTF-16/32 from NULs), no tab, '\r' only in "\r\n", and a first
    // byte below 0x80 (no BOM, no encoding guess).
    void check_bytes() const
    {
        if (!s_.empty() && static_cast<unsigned char>(s_[0]) >= 0x80) give_up();
        for (std::size_t i = 0; i < s_.size(); ++i) {
            auto c = static_cast<unsigned char>(s_[i]);
            if (c >= 0x20 && c != 0x7f) continue;
            if (c == '\n' || (c == '\r' && i + 1 < s_.size() && s_[i + 1] == '\n')) continue;
            give_up();
        }
    }

    char at(std::size_t i) const { return i < s_.size() ? s_[i] : '\0'; }  // '\0': the end (no NUL inside)
    bool eof() const { return p_ >= s_.size(); }
    int column() const { return static_cast<int>(p_ - line_start_); }
    bool eol(std::size_t i) const { return i >= s_.size() || s_[i] == '\n' || s_[i] == '\r'; }
    bool blank_or_eol(std::size_t i) const { return eol(i) || s_[i] == ' '; }
    bool block_entry() const { return at(p_) == '-' && blank_or_eol(p_ + 1); }
    bool plain_start(std::size_t i) const
    {
        auto c = static_cast<unsigned char>(at(i));
        if (safe_start(c)) return true;
        auto d = static_cast<unsigned char>(at(i + 1));
        return (c == '-' || c == ':') && (safe_start(d) || d == '-' || d == ':');
    }

    void newline()
    {
        p_ += s_[p_] == '\r' ? 2 : 1;
        ++line_;
        line_start_ = p_;
    }
    void skip_spaces()
    {
        while (at(p_) == ' ') ++p_;
    }
    // At '#': a comment only after a space or at the start of a line (yaml-cpp also takes one right
    // after a quote or a bracket; not worth the cases).
    void skip_comment()
    {
        if (p_ != line_start_ && s_[p_ - 1] != ' ') give_up();
        while (!eol(p_)) ++p_;
    }
    // Spaces and a comment up to the end of the line, which must come next.
    void end_of_line()
    {
        skip_spaces();
        if (at(p_) == '#') skip_comment();
        if (!eol(p_)) give_up();
    }
    // To the next token over spaces, comments and line breaks (yaml-cpp ScanToNextToken). A token
    // at column 0 that could be a directive or a document marker is left to yaml-cpp.
    void skip_to_next_token(bool document_start_allowed)
    {
        for (;;) {
            skip_spaces();
            if (at(p_) == '#') skip_comment();
            if (eof()) return;
            if (s_[p_] == '\n' || s_[p_] == '\r') {
                newline();
                continue;
            }
            break;
        }
        if (column() == 0 && !document_start_allowed &&
            (s_[p_] == '%' || s_.compare(p_, 3, "---") == 0 || s_.compare(p_, 3, "...") == 0))
            give_up();
        if (column() == 0 && s_[p_] == '%') give_up();
    }

    // -- the tree ------------------------------------------------------------------------------
    void count()
    {
        if (++nodes_ > kMaxYamlNodes) give_up();  // yaml-cpp's pass reports it
    }
    void depth()
    {
        if (block_.size() + flow_depth_ >= kMaxFastDepth) give_up();
    }
    void null_at(int line, int column)
    {
        count();
        builder_.add_null(line, column);
    }
    // yaml-cpp: a plain scalar ~, null, Null or NULL is a null node (IsNullString), quoted it is text.
    void scalar_at(int line, int column, const Scalar& s)
    {
        count();
        if (s.plain && (s.text == "~" || s.text == "null" || s.text == "Null" || s.text == "NULL"))
            builder_.add_null(line, column);
        else
            builder_.add_scalar(line, column, s.text);
    }
    void open_block(bool mapping, int line, int column, bool indentless)
    {
        depth();
        count();
        if (mapping)
            builder_.open_mapping(line, column);
        else
            builder_.open_sequence(line, column);
        block_.push_back(Frame{mapping, column, indentless});
    }
    void close_block()
    {
        builder_.close();
        block_.pop_back();
    }

    // -- scalars -------------------------------------------------------------------------------
    // A quoted scalar on one line: 'text' ('' is a quote) or "text" without backslash escapes.
    // Leaves p_ after the closing quote.
    std::string_view quoted()
    {
        const char quote = s_[p_];
        const std::size_t start = p_ + 1;
        std::size_t i = start;
        bool doubled = false;  // a '' inside: the text is not a slice of the file
        for (;; ++i) {
            if (eol(i)) give_up();  // continued on the next line, or unclosed
            if (quote == '"') {
                if (s_[i] == '\\') give_up();
                if (s_[i] == '"') break;
            } else if (s_[i] == '\'') {
                if (at(i + 1) != '\'') break;
                doubled = true;
                ++i;
            }
        }
        p_ = i + 1;
        std::string_view text = s_.substr(start, i - start);
        if (!doubled) return text;
        unquoted_.clear();
        for (std::size_t j = 0; j < text.size(); ++j) {
            unquoted_ += text[j];
            if (text[j] == '\'') ++j;  // the second of ''
        }
        return unquoted_;
    }

    // A scalar in block context: quoted, or plain up to ": ", " #" or the end of the line (yaml-cpp
    // ScanScalarEnd), trailing spaces trimmed. Leaves p_ at the ':', at the space before '#', at
    // the end of the line, or (quoted, end other) after the spaces that follow it.
    Scalar block_scalar()
    {
        Scalar s;
        if (at(p_) == '\'' || at(p_) == '"') {
            s.text = quoted();
            skip_spaces();
            s.end = at(p_) == ':' && blank_or_eol(p_ + 1) ? Scalar::colon : Scalar::other;
            return s;
        }
        if (!plain_start(p_)) give_up();
        s.plain = true;
        const std::size_t start = p_;
        std::size_t i = p_;
        for (;; ++i) {
            if (eol(i)) {
                s.end = Scalar::eol;
                break;
            }
            if (s_[i] == ':' && blank_or_eol(i + 1)) {
                s.end = Scalar::colon;
                break;
            }
            if (s_[i] == ' ' && at(i + 1) == '#') {
                s.end = Scalar::comment;
                break;
            }
        }
        p_ = i;
        while (i > start && s_[i - 1] == ' ') --i;
        s.text = s_.substr(start, i - start);
        return s;
    }

    // A scalar in flow context: quoted, or plain up to ',', ']', '}' or ':' before a blank or one of
    // those (yaml-cpp ScanScalarEndInFlow); one that reaches the end of its line would be folded
    // with the next, and '[', '{', '?' or a comment inside one are odd: give up. Leaves p_ at its end
    // (at the ':' when end is colon).
    Scalar flow_scalar()
    {
        Scalar s;
        if (at(p_) == '\'' || at(p_) == '"') {
            s.text = quoted();
            skip_spaces();
            if (at(p_) == ':') {
                // After a quoted scalar yaml-cpp takes any ':' as a value (JSON style): only the
                // ordinary spelling is kept.
                const char next = at(p_ + 1);
                if (!(blank_or_eol(p_ + 1) || next == ',' || next == ']' || next == '}')) give_up();
                s.end = Scalar::colon;
            }
            return s;
        }
        if (!plain_start(p_)) give_up();
        s.plain = true;
        const std::size_t start = p_;
        std::size_t i = p_;
        for (;; ++i) {
            if (eol(i)) give_up();
            const char c = s_[i];
            if (c == ',' || c == ']' || c == '}') break;
            if (c == '[' || c == '{' || c == '?') give_up();
            if (c == ':') {
                const char next = at(i + 1);
                if (blank_or_eol(i + 1) || next == ',' || next == ']' || next == '}') {
                    s.end = Scalar::colon;
                    break;
                }
            }
            if (c == ' ' && at(i + 1) == '#') give_up();
        }
        p_ = i;
        while (i > start && s_[i - 1] == ' ') --i;
        s.text = s_.substr(start, i - start);
        return s;
    }

    // After a plain scalar that ran to the end of its line: yaml-cpp folds the next non-blank line
    // into it when that line is indented past the innermost block collection (`column`), even a
    // comment line. Give up then.
    void not_continued(int column) const
    {
        std::size_t i = p_;
        while (!eol(i)) ++i;
        while (i < s_.size()) {
            i += s_[i] == '\r' ? 2 : 1;  // the line break
            const std::size_t line_start = i;
            while (at(i) == ' ') ++i;
            if (i >= s_.size()) return;
            if (s_[i] == '\n' || s_[i] == '\r') continue;  // a blank line
            if (static_cast<int>(i - line_start) > column) give_up();
            return;
        }
    }

    // -- flow collections ----------------------------------------------------------------------
    // Over spaces, comments and line breaks inside [ ] or { }. yaml-cpp checks no indentation
    // there, but a token at column 0 may be a document marker or a directive.
    void flow_skip()
    {
        for (;;) {
            skip_spaces();
            if (at(p_) == '#') skip_comment();
            if (eof()) give_up();  // unclosed
            if (s_[p_] == '\n' || s_[p_] == '\r') {
                newline();
                const char c = at(p_);
                if (c == '-' || c == '.' || c == '%') give_up();
                continue;
            }
            return;
        }
    }

    // A flow collection from its '[' or '{' to just after its closing bracket. Recursion bounded by
    // depth() (kMaxFastDepth).
    void flow()
    {
        const bool mapping = s_[p_] == '{';
        const char close = mapping ? '}' : ']';
        depth();
        count();
        if (mapping)
            builder_.open_mapping(line_, column());
        else
            builder_.open_sequence(line_, column());
        ++flow_depth_;
        ++p_;
        flow_skip();
        if (at(p_) != close) {
            for (;;) {
                if (mapping) {
                    const int line = line_, col = column();
                    const std::size_t start = p_;
                    Scalar key = flow_scalar();
                    if (key.end != Scalar::colon || p_ - start > kMaxKeyBytes) give_up();  // a key alone
                    scalar_at(line, col, key);
                    ++p_;
                    flow_skip();
                    // yaml-cpp: no value is a null at the next token (the ',' or the '}').
                    if (at(p_) == ',' || at(p_) == '}')
                        null_at(line_, column());
                    else
                        flow_value();
                } else {
                    if (at(p_) == ',') give_up();  // an empty entry
                    flow_value();
                }
                flow_skip();
                if (at(p_) == close) break;
                if (at(p_) != ',') give_up();
                ++p_;
                flow_skip();
                if (at(p_) == close) give_up();  // a trailing ','
            }
        }
        ++p_;
        --flow_depth_;
        builder_.close();
    }

    void flow_value()
    {
        if (at(p_) == '[' || at(p_) == '{') return flow();
        const int line = line_, col = column();
        Scalar value = flow_scalar();
        if (value.end == Scalar::colon) give_up();  // a one-pair mapping inside [ ], or "a: b: c"
        scalar_at(line, col, value);
    }

    // -- block collections ---------------------------------------------------------------------
    // The top mapping and everything in it. The stack of open block collections mirrors yaml-cpp's
    // indentation stack: a token at a column closes the collections deeper than it, and must then
    // be the next entry of the innermost one (yaml-cpp PopIndentToHere; anything else is an error
    // or a construct left out, so give up).
    void block()
    {
        open_block(true, line_, 0, false);
        for (;;) {
            if (eof()) break;
            const int c = column();
            while (block_.back().column > c ||
                   (block_.back().column == c && block_.back().indentless && !block_entry())) {
                close_block();
                if (block_.empty()) give_up();
            }
            const Frame& top = block_.back();
            if (top.column != c) give_up();  // deeper than the entries around it
            if (top.mapping) {
                if (block_entry()) give_up();  // "- " where a key is due
                map_entry(c);
            } else {
                if (!block_entry()) give_up();
                ++p_;
                value(c, false);
            }
            skip_to_next_token(false);
        }
        while (!block_.empty()) close_block();
    }

    // "key: value" of the mapping at `column`; p_ at the key.
    void map_entry(int column)
    {
        const int line = line_;
        const std::size_t start = p_;
        Scalar key = block_scalar();
        if (key.end != Scalar::colon || p_ - start > kMaxKeyBytes) give_up();  // not a key line
        scalar_at(line, column, key);
        ++p_;  // the ':'
        value(column, true);
    }

    // What follows a key's ':' (after_key) or a sequence's '-' (p_ just after it), in the block
    // collection at `column`. Leaves p_ at the end of the line, or at the next token when the value
    // is a block collection on the lines below (opened here; block() reads its first entry).
    void value(int column, bool after_key)
    {
        skip_spaces();
        if (at(p_) == '#') skip_comment();
        if (eol(p_)) {
            skip_to_next_token(false);
            if (eof()) {
                // yaml-cpp: the null is at the first token that ends a collection. At the end of
                // the file the innermost collection is ended at the end's own column if it is
                // deeper (a sequence: as deep) than that column (PopIndentToHere), else at column
                // 0 of the last line (EndStream resets the column).
                const Frame& f = block_.back();
                const int end = this->column();
                null_at(line_, f.column > end || (f.column == end && !f.mapping) ? end : 0);
                return;
            }
            const int next = this->column();
            if (next > column) {
                open_block(!block_entry(), line_, next, false);
            } else if (next == column && after_key && block_entry()) {
                open_block(false, line_, next, true);
            } else {
                null_at(line_, next);  // yaml-cpp: a null at the next token
            }
            return;
        }
        if (at(p_) == '[' || at(p_) == '{') {
            flow();
            end_of_line();
            return;
        }
        if (block_entry()) give_up();  // "- - a", "key: - a"
        const int line = line_, col = this->column();
        const std::size_t start = p_;
        Scalar s = block_scalar();
        if (s.end == Scalar::colon) {
            // "- key: value" opens a mapping at the key; "a: b: c" is an error in yaml-cpp.
            if (after_key || p_ - start > kMaxKeyBytes) give_up();
            open_block(true, line, col, false);
            scalar_at(line, col, s);
            ++p_;
            value(col, true);  // after_key: recurses no further
            return;
        }
        scalar_at(line, col, s);
        if (s.plain && s.end == Scalar::eol) not_continued(column);
        end_of_line();
    }

    std::string_view s_;
    std::size_t p_ = 0, line_start_ = 0;
    int line_ = 0;
    TreeBuilder builder_;
    std::size_t nodes_ = 0;
    std::vector<Frame> block_;
    std::size_t flow_depth_ = 0;
    std::string unquoted_;
};

}  // namespace

std::optional<FastTree> fast_tree(std::string_view text)
{
    try {
        return Scanner(text).run();
    } catch (const GiveUp&) {
        return std::nullopt;
    }
}

}  // namespace fulcrum::config::detail
