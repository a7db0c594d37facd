"""`python -m maritime_slm.llm.llama_server ARGS`: `python -m llama_cpp.server ARGS` with weight repacking off.

On CPUs that advertise AMX (Sapphire Rapids and later) a source build of llama-cpp-python 0.3.36 picks the
"extra buffer types" that repack weights for AMX; under virtualisation that does not grant AMX, every prompt
of more than one token then segfaults in libggml-cpu (the server dies on its first request). The server's CLI
has no switch for it, so this launcher turns `use_extra_bufts` off in the default model params and starts the
unchanged server. A 135M model loses nothing measurable.
"""

from __future__ import annotations

from typing import Any

import llama_cpp.llama_cpp as llama_capi


def disable_weight_repacking() -> None:
    default_params = llama_capi.llama_model_default_params

    def params_without_extra_buffers() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_capi.llama_model_default_params = params_without_extra_buffers


def main() -> None:
    disable_weight_repacking()
    from llama_cpp.server.__main__ import main as server_main

    server_main()


if __name__ == "__main__":
    main()
