"""Independent check of loraforge's TensorBoard event files with TensorBoard's own reader.

Usage: python read_tensorboard_events.py <logdir>
Prints every scalar series TensorBoard finds (tag: [(step, value), ...]). Not run by npm test:
TensorBoard is Python; the node test decodes the same files with its own reader.
"""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1])
acc.Reload()
for tag in sorted(acc.Tags()["scalars"]):
    print(tag, [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)])
