"""Export a trained clone (outputs/<run>/) to exports/<name>/: the LoRA adapter, merged models, GGUF files with an
Ollama Modelfile, and a GGUF LoRA adapter. Every file is loaded and asked for a reply before the export is kept.

    python export_model.py                                   # newest run, export.formats (gguf q4_k_m)
    python export_model.py --input <run> --format lora,merged_16bit,gguf --quantization q4_k_m,q8_0
    python export_model.py --format all --name sam-clone --set export.verify=false
"""

import sys
import time

from hive import cli, paths


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    parser.add_argument("--input", metavar="RUN", help="a train.py run: its name or folder (default: the newest)")
    cli.config_flag(parser, "--format", key="export.formats", action="extend", type=split_list, metavar="FORMAT",
                    help="lora | merged_16bit | merged_4bit | gguf | lora_gguf | all (repeatable or comma list)")
    cli.config_flag(parser, "--quantization", key="export.quantization", action="extend", type=split_list,
                    metavar="TYPE",
                    help="GGUF type(s): q4_k_m | q5_k_m | q8_0 | f16 | bf16 (repeatable or comma list)")
    cli.config_flag(parser, "--name", key="export.name", metavar="NAME", help="folder exports/<name>/ and file prefix")
    args, cfg = cli.parse(parser, argv)
    cli.print_settings("export_model", cfg, ["export", "generation"])
    started = time.time()

    from hive import export, runs

    run = runs.load_run(args.input, cfg.path("outputs"))
    persona = "yes" if run.system_prompt else "none"
    print(f"  input: {run.folder} (base {run.base_model}, persona {persona})", flush=True)
    result = export.export_run(run, cfg, cfg.export.name, cfg.export.formats, cfg.export.quantization)

    print("\n" + export.format_table(result))
    for note in result.notes:
        print(f"  {note}")
    rows = {"export": str(result.folder), "files": len(result.artifacts),
            "size": f"{sum(a.size for a in result.artifacts) / 1e6:,.1f} MB"}
    rows.update({f"run {i + 1}": c for i, c in enumerate(result.commands)})
    cli.print_summary("export_model", rows, f"python chat.py {paths.display(result.folder)}", started)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
