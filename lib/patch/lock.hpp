// One hp-apply per process instance at a time (DESIGN §6): an flock on a file named by
// PID and start time. The loser gets Error(Busy) at once, never waits.
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
    const std::string& path() const { return path_; }

  private:
    int fd_ = -1;
    std::string path_;
};


} // namespace hp::patch
