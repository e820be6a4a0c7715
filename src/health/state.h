// Rise/fall counting for one backend: `rise` consecutive passes take it up, `fall` consecutive
// failures take it down; anything else keeps its state. Pure, so it is unit-tested alone.
#pragma once

namespace fulcrum::health {

class HealthState {
public:
    HealthState(unsigned rise, unsigned fall, bool start_up) : rise_(rise), fall_(fall), up_(start_up) {}

    // One check result; returns true when the backend changed between up and down.
    bool feed(bool ok)
    {
        if (ok) {
            fails_ = 0;
            if (!up_ && ++passes_ >= rise_) {
                up_ = true;
                passes_ = 0;
                return true;
            }
        } else {
            passes_ = 0;
            if (up_ && ++fails_ >= fall_) {
                up_ = false;
                fails_ = 0;
                return true;
            }
        }
        return false;
    }

    bool up() const { return up_; }
    void set_thresholds(unsigned rise, unsigned fall)
    {
        rise_ = rise;
        fall_ = fall;
    }

private:
    unsigned rise_, fall_;
    bool up_;
    unsigned passes_ = 0, fails_ = 0;
};

}  // namespace fulcrum::health
