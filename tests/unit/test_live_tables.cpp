// LiveTables (src/dataplane/live_tables.h): which descriptors stay open through a transaction and
// which are closed at its end. Plain pipe descriptors stand in for inner maps: only their lifetime
// is under test (the real maps: tests/bpf/test_apply_atomic.cpp, test_reload_map_failure.py).
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "dataplane/live_tables.h"

using fulcrum::dataplane::LiveTables;

namespace {

// A descriptor that refers to something, to be handed over to a LiveTables.
int fresh_fd()
{
    int p[2];
    REQUIRE(pipe(p) == 0);
    close(p[1]);
    return p[0];
}

bool is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

}  // namespace

TEST_CASE("live tables: outside a transaction a replaced or removed table is closed at once")
{
    LiveTables t;
    const int a = fresh_fd(), b = fresh_fd();
    t.installed(7, a);
    CHECK(t.fd(7) == a);
    t.installed(7, b);
    CHECK(t.fd(7) == b);
    CHECK_FALSE(is_open(a));
    t.removed(7);
    CHECK(t.fd(7) == -1);
    CHECK_FALSE(is_open(b));
}

TEST_CASE("live tables: commit keeps the new tables and closes the ones they replaced")
{
    LiveTables t;
    const int old1 = fresh_fd(), old2 = fresh_fd();
    t.installed(1, old1);
    t.installed(2, old2);
    t.begin();
    const int new1 = fresh_fd(), temp = fresh_fd(), new3 = fresh_fd();
    t.installed(1, temp);
    t.installed(1, new1);  // replaced twice in one transaction
    t.removed(2);
    t.installed(3, new3);
    CHECK(is_open(old1));  // rollback may still put these back
    CHECK(is_open(old2));
    CHECK(is_open(temp));
    t.commit();
    CHECK(t.fd(1) == new1);
    CHECK(t.fd(2) == -1);
    CHECK(t.fd(3) == new3);
    CHECK(is_open(new1));
    CHECK(is_open(new3));
    CHECK_FALSE(is_open(old1));
    CHECK_FALSE(is_open(old2));
    CHECK_FALSE(is_open(temp));
}

TEST_CASE("live tables: rollback puts the previous descriptors back and closes what the transaction installed")
{
    LiveTables t;
    const int old1 = fresh_fd(), old2 = fresh_fd();
    t.installed(1, old1);
    t.installed(2, old2);
    t.begin();
    const int new1 = fresh_fd(), new3 = fresh_fd();
    t.installed(1, new1);
    t.removed(2);
    t.installed(3, new3);
    t.rollback();
    CHECK(t.fd(1) == old1);
    CHECK(t.fd(2) == old2);
    CHECK(t.fd(3) == -1);
    CHECK(t.size() == 2);
    CHECK(is_open(old1));
    CHECK(is_open(old2));
    CHECK_FALSE(is_open(new1));
    CHECK_FALSE(is_open(new3));
}
