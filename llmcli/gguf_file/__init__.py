"""A GGUF model file read without loading it into the engine.

Two modules, in different layers: `header` needs only the standard library, `info` also
the configuration (its card cache) and the `gguf` package's constants.

    header  the header's keys and tensor list, big arrays stepped over; the early check of
            a model file, before llama.cpp loads it
    info    the model card built from the header and cached; the only module that imports
            `gguf`
"""
