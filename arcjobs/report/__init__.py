"""`arcjobs report`: one static page (HTML + Markdown) summarising one run or several.

The work is split by concern so each part can be tested alone: `collect` reads run
directories into plain data (no plotting, no HTML), `plots` and `grids` turn that data into
PNG images with matplotlib, `html` and `markdown` lay out the same content for a browser and
for a text viewer, and `build` runs them in order and publishes the report directory
atomically. Everything here imports numpy/matplotlib freely: the command module imports this
package only inside the command function, so `arcjobs --help` never pays for it.
"""
