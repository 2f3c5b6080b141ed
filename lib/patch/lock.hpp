// One hp-apply per process instance at a time (DESIGN §6): an abstract unix socket named
// by PID and start time. The loser gets Error(Busy) at once, never waits.
#pragma once

#include "proc/process.hpp"

#include <string>

namespace hp::patch {

class InstanceLock {
  public:
    explicit InstanceLock(const proc::Instance& inst);
    ~InstanceLock();
    InstanceLock(const InstanceLock&) = delete;
    InstanceLock& operator=(const InstanceLock&) = delete;
    // "@hotpatch-PID-STARTTIME", as ss(8) and /proc/net/unix show it.
    const std::string& name() const { return name_; }

  private:
    int fd_ = -1;
    std::string name_;
};

} // namespace hp::patch
