"""The README's issue-22/23 regions (scale-out, video flicker, the web page), from committed results.

Kept apart from `bench.readme` so each file holds one subject; each region reuses the table
renderer of the bench that wrote its JSON, so the README and the bench's own printout agree.
Pure Python: no TensorFlow, no Ray, no measurement.
"""

from __future__ import annotations

from pathlib import Path

from bench.readme_speed import _para, read_optional


def ray_section(data: dict) -> str:
    """The 2x2 grid on one process, a Ray actor pool and plain Ray tasks (`ray_overhead.json`)."""
    from bench.ray_overhead import markdown_table

    s = data["settings"]
    loads = [data["sides"][side]["load_average"] for side in data["sides"]]
    intro = (f"`{data['command']}` (`ray_overhead.json`; a {s['grid']} grid of `{s['backbone']}` cells at "
             f"{s['size']} px, {s['steps']} {s['optimizer']} steps, {s['precision']}; a local Ray cluster of "
             f"{s['ray_cpus']} CPUs on this {s['cpu_count']}-core machine, load average "
             f"{min(loads):.1f}–{max(loads):.1f}; one run, ratios within it):")
    pixels = "byte-identical" if data["same_pixels"] else "NOT identical"
    verdict = (f"Ray costs {data['wall_ratio_to_local']['actors']:.2f}× (actor pool) and "
               f"{data['wall_ratio_to_local']['tasks']:.2f}× (plain tasks) the one-process wall time here, "
               f"{data['wall_ratio_to_local_with_ray_start']['actors']:.2f}× and "
               f"{data['wall_ratio_to_local_with_ray_start']['tasks']:.2f}× counting the cluster's start: one "
               f"TensorFlow process already keeps both cores busy, so Ray pays off only with more cores or nodes. "
               f"The cells of all three runs are {pixels}. The default mode is `{data['faster_ray_mode']}`, the "
               f"faster here; its backbone loads once per worker, plain tasks load it once per cell.")
    return "\n".join([_para(intro), "", markdown_table(data).rstrip("\n"), "", _para(verdict)])


def web_section(data: dict) -> str:
    """Start-to-first-image latency and the 50-megapixel upload (`web_first_image.json`)."""
    from bench.web_latency import markdown

    load = data["load_average_after"][0]
    intro = (f"`{data['command']}` (`web_first_image.json`; the server in its own process on {data['cpus']} "
             f"cores, load average {load:.1f} at the end; the first repeat includes loading the backbone and "
             f"TensorFlow's first tracing):")
    return "\n".join([_para(intro), "", markdown(data).rstrip("\n")])


def flicker_section(data: dict) -> str:
    """Frame-by-frame, warm start, warm start + temporal loss on a panning clip (`flicker.json`)."""
    from bench.flicker import render_table

    intro = (f"`{data['command']}` (`flicker.json`; {data['cpu_count']} cores, load average "
             f"{data['load_average'][0]:.1f} at the end; wall and CPU seconds from one run):")
    return "\n".join([_para(intro), "", render_table(data).rstrip("\n")])


def load(results: Path) -> dict:
    """name -> the JSON each region quotes."""
    return {"ray": read_optional(results, "ray_overhead.json"), "web": read_optional(results, "web_first_image.json"),
            "flicker": read_optional(results, "flicker.json")}
