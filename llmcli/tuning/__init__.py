"""How llama.cpp should run on this machine: which engine setup is safe and fastest for a
model, how many threads, what a batch costs. Measured once per machine, build and model,
kept on disk, and read cheaply (nothing here imports llama_cpp)."""
