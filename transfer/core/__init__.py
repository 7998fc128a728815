"""The optimisation itself: the run spec, layer taps, losses, objectives, optimisers, schedules, the loop."""
