# %% [markdown]
# # Exercise 05b — is one model really better than another?
# Lesson 05 gives every accuracy a standard error, √(p(1−p)/n), and says differences smaller than that are
# noise. The next questions a report card raises, one step beyond it:
#
# 1. **Two models on the same questions.** Run A scores 0.62 and run B 0.58 on the same 500 questions: is
#    A better, or is it noise? Score the difference question by question, `d_i = a_i − b_i` (1, 0 or −1);
#    the difference is the mean of the `d_i` and its standard error is that of a mean, √(var(d) / n)
#    (population variance, as lesson 05's formula is for 0/1 scores). Because both models face the *same*
#    questions, the easy and the hard ones cancel out: when the models agree on most questions this error is
#    far smaller than combining the two error bars, √(se_A² + se_B²), as if the runs had been scored on
#    different questions.
# 2. **How many questions?** The fewest questions that bring lesson 05's standard error down to a margin
#    you choose: what `--max-per-task` must be for a quick run to tell apart models 0.03 apart.
#
# Grade with `make grade LESSON=05`.

# %%
import math

# %%
def paired_difference(correct_a: list[bool], correct_b: list[bool]) -> tuple[float, float]:
    """(accuracy of A − accuracy of B, its standard error) for two models scored on the same questions.

    correct_a[i], correct_b[i]: whether model A, model B got question i right.
    d_i = a_i − b_i; return (mean(d), sqrt(population variance of d / n)).
    Raise ValueError when the lists are empty or of different lengths.
    Example: paired_difference([True, True, False, True], [True, False, False, True]) == (0.25, 0.2165…)
    Hint: with B always wrong, it is lesson 05's stderr(accuracy of A, n).
    """
    if not correct_a or len(correct_a) != len(correct_b):
        raise ValueError(f"need two equally long, non-empty lists of scores, got {len(correct_a)} and {len(correct_b)}")
    d = [int(a) - int(b) for a, b in zip(correct_a, correct_b)]
    n = len(d)
    mean = sum(d) / n
    variance = sum(x * x for x in d) / n - mean * mean
    return mean, math.sqrt(max(variance, 0.0) / n)

# %%
def questions_needed(accuracy: float, margin: float) -> int:
    """The fewest questions n for which lesson 05's standard error sqrt(accuracy (1 − accuracy) / n) <= margin.

    Example: questions_needed(0.5, 0.05) == 100;  questions_needed(1.0, 0.01) == 1 (no noise at all)
    Raise ValueError unless 0 <= accuracy <= 1 and margin > 0.
    Hint: solve the inequality for n, then math.ceil.
    """
    if not 0 <= accuracy <= 1: raise ValueError(f"accuracy {accuracy} must be in [0, 1]")
    if not margin > 0: raise ValueError(f"margin {margin} must be positive")
    return max(1, math.ceil(accuracy * (1 - accuracy) / margin ** 2))
