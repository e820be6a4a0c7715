// fake_catch2: a real Catch2 binary with three test cases whose second one misbehaves as
// FAKE_CATCH2_MODE says (pass, fail, crash, kill, hang, noassert; and, built with ASan+UBSan as
// fake_catch2_asan, leak, overflow, ub). It is the subject of
// tests/system/test_run_all_honesty.py, which checks that tests/run_all never counts a test case
// as passed unless it ran, finished and asserted something, nor a sanitized run that reported
// anything. Not named test_*: run_all does not run it by itself.
#include <catch2/catch.hpp>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace {
std::string mode()
{
    const char* m = std::getenv("FAKE_CATCH2_MODE");
    return m ? m : "pass";
}
}  // namespace

TEST_CASE("first")
{
    CHECK(1 + 1 == 2);
}

TEST_CASE("second")
{
    const std::string m = mode();
    if (m == "noassert")
        return;  // no assertion at all: must fail under -w NoAssertions
    if (m == "crash")
        std::raise(SIGSEGV);  // Catch2's handler reports it, then the binary dies of SIGSEGV
    if (m == "kill")
        std::raise(SIGKILL);  // no handler: the report is cut short wherever it was
    if (m == "hang")
        for (;;)
            pause();  // until the runner's time limit stops it
    // For the sanitized build only. volatile keeps the compiler from removing or folding them.
    if (m == "leak") {
        char* volatile lost = static_cast<char*>(std::malloc(64));
        lost[0] = 1;
        lost = nullptr;  // unreachable now: every case passes, LeakSanitizer reports at exit
    }
    if (m == "overflow") {
        char* volatile block = static_cast<char*>(std::malloc(8));
        volatile int past = 8;
        block[past] = 1;  // heap-buffer-overflow: ASan stops the binary in this case
        std::free(block);
    }
    if (m == "ub") {
        volatile int big = INT_MAX;
        volatile int sum = big + 1;  // signed overflow: UBSan stops the binary in this case
        (void)sum;
    }
    CHECK(m != "fail");
}

TEST_CASE("third")
{
    CHECK(2 * 2 == 4);
}
