// Desired states in tests come without Maglev tables (they are built by hand or edited after
// make_desired); the reconciler needs them, so each test apply goes through with_tables, as the
// daemon's goes through its TableCache.
#pragma once

#include <stdexcept>

#include "plan/desired.h"
#include "plan/tables.h"

namespace fulcrum::test {

inline plan::Desired with_tables(plan::Desired desired)
{
    plan::TableCache tables;
    if (Status s = tables.build(desired); !s.ok())
        throw std::runtime_error(s.message());  // a test input Maglev refuses: fails the test case
    return desired;
}

}  // namespace fulcrum::test
