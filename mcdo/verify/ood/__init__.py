"""MCM softmax vs sigmoid OOD scoring (seed 001): one module per tier (math, proxy, gpu)."""
