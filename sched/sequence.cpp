#include "sched/sequence.h"

namespace icam::sched {

std::string_view sequence_state_name(SequenceState state) {
  switch (state) {
    case SequenceState::waiting:
      return "waiting";
    case SequenceState::prefilling:
      return "prefilling";
    case SequenceState::decoding:
      return "decoding";
    case SequenceState::preempted:
      return "preempted";
    case SequenceState::paused:
      return "paused";
    case SequenceState::blocked:
      return "blocked";
    case SequenceState::finished:
      return "finished";
  }
  return "?";
}

}  // namespace icam::sched
