"""The progress screen plugins open with SlashContext.show_progress (used by /train): bar, status, live plot, stop."""

from __future__ import annotations

import threading

from assistant import hookimpl
from assistant.hooktypes import ProgressView, SlashCommand
from assistant.tui.screens.progress import ProgressScreen
from tests.tui.tuihelpers import SIZE, async_test, type_and_send, wait_for


class Work:
    """Work that advances on its own thread; the progress screen polls it."""

    def __init__(self) -> None:
        self.step = 0
        self.losses: list[float] = []
        self.validation: list[float] = []
        self.stopped = threading.Event()

    def view(self) -> ProgressView:
        return ProgressView("Training adapter demo", completed=self.step, total=10,
                            status=f"step {self.step}/10 · loss {self.losses[-1] if self.losses else 0:.2f}",
                            series=list(self.losses), finished=self.step >= 10,
                            second_series=list(self.validation))

    def advance(self) -> None:
        self.step += 1
        self.losses.append(5.0 / self.step)


class ProgressPlugin:
    def __init__(self, work: Work) -> None:
        self.work = work

    @hookimpl
    def register_slash_commands(self, register):
        register(SlashCommand("demo", "show progress", lambda context, argument: context.show_progress(
            self.work.view, self.work.stopped.set)))


@async_test
async def test_progress_screen_follows_the_work_and_can_stop_it(make_app):
    work = Work()
    app = make_app(autoload=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.plugins is not None, "the plugins")
        app.plugins.register(ProgressPlugin(work), name="progress-demo")
        app.reload_commands()
        await type_and_send(pilot, "/demo")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), "the progress screen")
        for _ in range(4):
            work.advance()
        await wait_for(pilot, lambda: app.screen.query_one("#progress-bar").progress == 4, "the bar to follow")
        assert "step 4/10" in str(app.screen.query_one("#progress-status").render())
        assert list(app.screen.query_one("#progress-plot").data) == work.losses
        assert not app.screen.query_one("#progress-plot2").display  # no second curve yet: no empty plot
        work.validation += [3.0, 2.5]
        await wait_for(pilot, lambda: app.screen.query_one("#progress-plot2").display, "the second plot")
        assert list(app.screen.query_one("#progress-plot2").data) == [3.0, 2.5]
        await pilot.pause()  # the screen grew by the second plot: let the layout settle before clicking
        await pilot.click("#progress-stop")
        assert work.stopped.is_set()
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ProgressScreen), "the screen to close")
        assert app.is_running
