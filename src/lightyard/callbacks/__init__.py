"""Lightning callbacks that lightyard adds: throughput, progress, preemption, non-finite guard."""
