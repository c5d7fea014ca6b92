"""`rlvr/CodeProblems-v0`: self-written programming problems, difficulty 1 (easy) to 5.

Each entry has a question that names the function (or the input/output format), a reference
solution and tests in one of the three formats of `rlvr_gym.verifiers.code`. The test suite
checks that every reference solution passes its own tests in the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlvr_gym.envs.code_tasks import fenced
from rlvr_gym.envs.sources import ListSource, require
from rlvr_gym.registration import register_task
from rlvr_gym.types import Problem


def _call(fn: str, *cases: tuple[list, Any], float_tol: float | None = None) -> dict[str, Any]:
    return {"format": "call", "fn": fn, "float_tol": float_tol,
            "cases": [{"args": args, "expected": expected} for args, expected in cases]}


def _stdio(*cases: tuple[str, str], float_tol: float | None = None) -> dict[str, Any]:
    return {"format": "stdio", "float_tol": float_tol,
            "cases": [{"input": i, "output": o} for i, o in cases]}


def _asserts(*lines: str) -> dict[str, Any]:
    return {"format": "assert", "asserts": list(lines)}


#: (slug, difficulty, question, reference solution, tests)
PROBLEMS: list[tuple[str, int, str, str, dict[str, Any]]] = [
    # -- difficulty 1 ------------------------------------------------------------------------
    ("add", 1,
     "Write a function `add(a, b)` that returns the sum of the integers a and b.",
     "def add(a, b):\n    return a + b\n",
     _call("add", ([1, 2], 3), ([-5, 5], 0), ([10**12, 1], 10**12 + 1))),
    ("is_even", 1,
     "Write a function `is_even(n)` that returns True if the integer n is even, else False.",
     "def is_even(n):\n    return n % 2 == 0\n",
     _call("is_even", ([4], True), ([7], False), ([0], True), ([-3], False))),
    ("max_of_three", 1,
     "Write a function `max_of_three(a, b, c)` that returns the largest of three numbers.",
     "def max_of_three(a, b, c):\n    return max(a, b, c)\n",
     _call("max_of_three", ([1, 2, 3], 3), ([3, 2, 1], 3), ([-1, -7, -3], -1), ([5, 5, 2], 5))),
    ("reverse_string", 1,
     "Write a function `reverse_string(s)` that returns the string s reversed.",
     "def reverse_string(s):\n    return s[::-1]\n",
     _call("reverse_string", (["abc"], "cba"), ([""], ""), (["racecar"], "racecar"))),
    ("count_vowels", 1,
     "Write a function `count_vowels(s)` that returns how many characters of s are vowels "
     "(a, e, i, o, u, upper or lower case).",
     "def count_vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s)\n",
     _call("count_vowels", (["hello"], 2), (["AEIOU xyz"], 5), ([""], 0), (["rhythm"], 0))),
    ("celsius_to_fahrenheit", 1,
     "Write a function `celsius_to_fahrenheit(c)` that converts a temperature in degrees "
     "Celsius to degrees Fahrenheit and returns it as a float.",
     "def celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32.0\n",
     _call("celsius_to_fahrenheit", ([0], 32.0), ([100], 212.0), ([-40], -40.0),
           ([36.6], 97.88), float_tol=1e-9)),
    ("sum_two_stdin", 1,
     "Read two integers from one line of standard input and print their sum.",
     "a, b = map(int, input().split())\nprint(a + b)\n",
     _stdio(("1 2\n", "3\n"), ("-10 4\n", "-6\n"), ("1000000000 1000000000\n", "2000000000\n"))),
    ("shout", 1,
     "Read one line from standard input and print it in upper case.",
     "print(input().upper())\n",
     _stdio(("hello world\n", "HELLO WORLD\n"), ("MiXeD 123\n", "MIXED 123\n"))),
    # -- difficulty 2 ------------------------------------------------------------------------
    ("factorial", 2,
     "Write a function `factorial(n)` that returns n! for an integer n >= 0.",
     "def factorial(n):\n    result = 1\n    for k in range(2, n + 1):\n        result *= k\n"
     "    return result\n",
     _call("factorial", ([0], 1), ([1], 1), ([5], 120), ([20], 2432902008176640000))),
    ("fizzbuzz", 2,
     "Write a function `fizzbuzz(n)` that returns a list of strings for 1..n: 'Fizz' for "
     "multiples of 3, 'Buzz' for multiples of 5, 'FizzBuzz' for multiples of both, otherwise "
     "the number itself as a string.",
     "def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n"
     "        s = ('Fizz' if i % 3 == 0 else '') + ('Buzz' if i % 5 == 0 else '')\n"
     "        out.append(s or str(i))\n    return out\n",
     _call("fizzbuzz", ([5], ["1", "2", "Fizz", "4", "Buzz"]), ([0], []),
           ([15], ["1", "2", "Fizz", "4", "Buzz", "Fizz", "7", "8", "Fizz", "Buzz", "11",
                   "Fizz", "13", "14", "FizzBuzz"]))),
    ("is_palindrome", 2,
     "Write a function `is_palindrome(s)` that returns True if s reads the same forwards and "
     "backwards when only letters and digits are kept and case is ignored.",
     "def is_palindrome(s):\n    kept = [c.lower() for c in s if c.isalnum()]\n"
     "    return kept == kept[::-1]\n",
     _call("is_palindrome", (["A man, a plan, a canal: Panama"], True), (["hello"], False),
           ([""], True), (["No 'x' in Nixon"], True), (["ab"], False))),
    ("sum_of_digits", 2,
     "Write a function `sum_of_digits(n)` that returns the sum of the decimal digits of the "
     "integer n >= 0.",
     "def sum_of_digits(n):\n    return sum(int(d) for d in str(n))\n",
     _asserts("assert sum_of_digits(0) == 0", "assert sum_of_digits(12345) == 15",
              "assert sum_of_digits(9999) == 36")),
    ("second_largest", 2,
     "Write a function `second_largest(nums)` that returns the second largest distinct value "
     "in the list nums, or None if there are fewer than two distinct values.",
     "def second_largest(nums):\n    values = sorted(set(nums))\n"
     "    return values[-2] if len(values) >= 2 else None\n",
     _call("second_largest", ([[3, 1, 4, 1, 5]], 4), ([[7, 7, 7]], None), ([[]], None),
           ([[-2, -1]], -2))),
    ("word_count", 2,
     "Write a function `word_count(text)` that returns a dict mapping each word (the text "
     "lower-cased and split on whitespace) to the number of times it occurs.",
     "def word_count(text):\n    counts = {}\n    for w in text.lower().split():\n"
     "        counts[w] = counts.get(w, 0) + 1\n    return counts\n",
     _call("word_count", (["the cat The hat"], {"the": 2, "cat": 1, "hat": 1}), ([""], {}),
           (["a  a\na"], {"a": 3}))),
    ("min_max_stdin", 2,
     "The first line of standard input holds n; the second line holds n integers. Print the "
     "smallest and the largest of them, separated by a space.",
     "input()\nnums = list(map(int, input().split()))\nprint(min(nums), max(nums))\n",
     _stdio(("5\n3 1 4 1 5\n", "1 5\n"), ("1\n-7\n", "-7 -7\n"), ("3\n10 -10 0\n", "-10 10\n"))),
    ("fibonacci", 2,
     "Write a function `fibonacci(n)` that returns the n-th Fibonacci number, with "
     "fibonacci(0) = 0 and fibonacci(1) = 1.",
     "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
     "    return a\n",
     _asserts("assert fibonacci(0) == 0", "assert fibonacci(1) == 1",
              "assert fibonacci(10) == 55", "assert fibonacci(90) == 2880067194370816120")),
    # -- difficulty 3 ------------------------------------------------------------------------
    ("is_prime", 3,
     "Write a function `is_prime(n)` that returns True if the integer n is a prime number.",
     "def is_prime(n):\n    if n < 2:\n        return False\n    k = 2\n    while k * k <= n:\n"
     "        if n % k == 0:\n            return False\n        k += 1\n    return True\n",
     _asserts("assert is_prime(2)", "assert is_prime(97)", "assert not is_prime(1)",
              "assert not is_prime(91)", "assert is_prime(1000003)", "assert not is_prime(-7)")),
    ("gcd_list", 3,
     "Write a function `gcd_list(nums)` that returns the greatest common divisor of a "
     "non-empty list of positive integers.",
     "from math import gcd\n\ndef gcd_list(nums):\n    g = 0\n    for x in nums:\n"
     "        g = gcd(g, x)\n    return g\n",
     _call("gcd_list", ([[12, 18, 24]], 6), ([[7]], 7), ([[17, 34, 5]], 1),
           ([[100, 1000]], 100))),
    ("run_length_encode", 3,
     "Write a function `run_length_encode(s)` that replaces every run of equal characters by "
     "the character followed by the run's length, e.g. 'aaab' -> 'a3b1'.",
     "def run_length_encode(s):\n    out = []\n    i = 0\n    while i < len(s):\n"
     "        j = i\n        while j < len(s) and s[j] == s[i]:\n            j += 1\n"
     "        out.append(s[i] + str(j - i))\n        i = j\n    return ''.join(out)\n",
     _call("run_length_encode", (["aaab"], "a3b1"), ([""], ""), (["abc"], "a1b1c1"),
           (["zzzzzzzzzzzz"], "z12"))),
    ("balanced_brackets", 3,
     "Write a function `balanced_brackets(s)` that returns True if every bracket in s of the "
     "kinds (), [] and {} is properly matched and nested; other characters are ignored.",
     "def balanced_brackets(s):\n    pairs = {')': '(', ']': '[', '}': '{'}\n    stack = []\n"
     "    for c in s:\n        if c in '([{':\n            stack.append(c)\n"
     "        elif c in pairs:\n            if not stack or stack.pop() != pairs[c]:\n"
     "                return False\n    return not stack\n",
     _call("balanced_brackets", (["([]{})"], True), (["([)]"], False), (["((("], False),
           (["a(b)c"], True), ([""], True), (["}"], False))),
    ("merge_sorted", 3,
     "Write a function `merge_sorted(a, b)` that merges two ascending lists into one ascending "
     "list (keep duplicates) without calling sort.",
     "def merge_sorted(a, b):\n    i = j = 0\n    out = []\n    while i < len(a) and j < len(b):\n"
     "        if a[i] <= b[j]:\n            out.append(a[i])\n            i += 1\n        else:\n"
     "            out.append(b[j])\n            j += 1\n    return out + a[i:] + b[j:]\n",
     _call("merge_sorted", ([[1, 3, 5], [2, 4, 6]], [1, 2, 3, 4, 5, 6]), ([[], [1]], [1]),
           ([[1, 1], [1]], [1, 1, 1]), ([[], []], []))),
    ("rotate_matrix", 3,
     "Write a function `rotate_matrix(m)` that returns the square matrix m (a list of rows) "
     "rotated 90 degrees clockwise, as a new list of lists.",
     "def rotate_matrix(m):\n    return [list(row) for row in zip(*m[::-1])]\n",
     _call("rotate_matrix", ([[[1, 2], [3, 4]]], [[3, 1], [4, 2]]), ([[[5]]], [[5]]),
           ([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]], [[7, 4, 1], [8, 5, 2], [9, 6, 3]]))),
    ("sort_words_stdin", 3,
     "Read one line of words from standard input. Print the words sorted by length, ties "
     "broken alphabetically, separated by single spaces.",
     "words = input().split()\nprint(' '.join(sorted(words, key=lambda w: (len(w), w))))\n",
     _stdio(("pear fig apple kiwi\n", "fig kiwi pear apple\n"), ("b a c\n", "a b c\n"),
            ("zz y xxx\n", "y zz xxx\n"))),
    ("two_sum", 3,
     "Write a function `two_sum(nums, target)` that returns a tuple (i, j) of indices with "
     "i < j and nums[i] + nums[j] == target, the smallest such i and then the smallest j; "
     "return None if there is no such pair.",
     "def two_sum(nums, target):\n    for i in range(len(nums)):\n"
     "        for j in range(i + 1, len(nums)):\n"
     "            if nums[i] + nums[j] == target:\n                return (i, j)\n"
     "    return None\n",
     _call("two_sum", ([[2, 7, 11, 15], 9], (0, 1)), ([[3, 2, 4], 6], (1, 2)),
           ([[1, 2], 7], None), ([[1, 5, 1, 5], 6], (0, 1)))),
    # -- difficulty 4 ------------------------------------------------------------------------
    ("lcs_length", 4,
     "Write a function `lcs_length(a, b)` that returns the length of the longest common "
     "subsequence of the strings a and b.",
     "def lcs_length(a, b):\n    prev = [0] * (len(b) + 1)\n    for x in a:\n"
     "        cur = [0]\n        for j, y in enumerate(b):\n"
     "            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))\n"
     "        prev = cur\n    return prev[-1]\n",
     _call("lcs_length", (["abcde", "ace"], 3), (["abc", "def"], 0), (["", "abc"], 0),
           (["AGGTAB", "GXTXAYB"], 4))),
    ("coin_change", 4,
     "Write a function `coin_change(coins, amount)` that returns the fewest coins (unlimited "
     "supply of each value in coins) adding up to amount, or -1 if it cannot be done.",
     "def coin_change(coins, amount):\n    best = [0] + [None] * amount\n"
     "    for a in range(1, amount + 1):\n"
     "        options = [best[a - c] for c in coins if c <= a and best[a - c] is not None]\n"
     "        best[a] = min(options) + 1 if options else None\n"
     "    return -1 if best[amount] is None else best[amount]\n",
     _call("coin_change", ([[1, 2, 5], 11], 3), ([[2], 3], -1), ([[1], 0], 0),
           ([[3, 7, 405, 436], 8839], 25))),
    ("roman_to_int", 4,
     "Write a function `roman_to_int(s)` that converts a Roman numeral (I, V, X, L, C, D, M, "
     "with subtractive forms such as IV and CM) to an integer.",
     "def roman_to_int(s):\n    v = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500,"
     " 'M': 1000}\n    total = 0\n    for i, c in enumerate(s):\n"
     "        if i + 1 < len(s) and v[c] < v[s[i + 1]]:\n            total -= v[c]\n"
     "        else:\n            total += v[c]\n    return total\n",
     _asserts("assert roman_to_int('III') == 3", "assert roman_to_int('LVIII') == 58",
              "assert roman_to_int('MCMXCIV') == 1994", "assert roman_to_int('IX') == 9")),
    ("grid_path_stdin", 4,
     "The first line of standard input holds R and C; then R lines of C characters follow, "
     "'.' free and '#' blocked. Print the number of steps of the shortest path from the "
     "top-left to the bottom-right cell moving up, down, left or right through free cells, "
     "or -1 if there is none (also if a corner is blocked).",
     "from collections import deque\n\nr, c = map(int, input().split())\n"
     "grid = [input().strip() for _ in range(r)]\ndist = {(0, 0): 0}\n"
     "queue = deque([(0, 0)]) if grid[0][0] == '.' else deque()\nwhile queue:\n"
     "    y, x = queue.popleft()\n    for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), "
     "(y, x - 1)):\n        if 0 <= ny < r and 0 <= nx < c and grid[ny][nx] == '.' and "
     "(ny, nx) not in dist:\n            dist[(ny, nx)] = dist[(y, x)] + 1\n"
     "            queue.append((ny, nx))\n"
     "ok = grid[0][0] == '.' and (r - 1, c - 1) in dist\n"
     "print(dist[(r - 1, c - 1)] if ok else -1)\n",
     _stdio(("3 3\n...\n.#.\n...\n", "4\n"), ("2 2\n.#\n#.\n", "-1\n"), ("1 1\n.\n", "0\n"),
            ("3 4\n..#.\n#...\n.#..\n", "5\n"))),
    ("top_k_frequent", 4,
     "Write a function `top_k_frequent(words, k)` that returns the k most frequent words of "
     "the list, most frequent first, ties in alphabetical order.",
     "from collections import Counter\n\ndef top_k_frequent(words, k):\n"
     "    counts = Counter(words)\n"
     "    return sorted(counts, key=lambda w: (-counts[w], w))[:k]\n",
     _call("top_k_frequent", ([["a", "b", "a", "c", "b", "a"], 2], ["a", "b"]),
           ([["x", "y", "z"], 2], ["x", "y"]), ([["q"], 1], ["q"]))),
    ("evaluate_rpn", 4,
     "Write a function `evaluate_rpn(tokens)` that evaluates a list of tokens in reverse "
     "Polish notation with integers and the operators +, -, * and / (division truncates "
     "toward zero) and returns the integer result.",
     "def evaluate_rpn(tokens):\n    stack = []\n    for t in tokens:\n"
     "        if t in ('+', '-', '*', '/'):\n            b, a = stack.pop(), stack.pop()\n"
     "            if t == '+':\n                stack.append(a + b)\n"
     "            elif t == '-':\n                stack.append(a - b)\n"
     "            elif t == '*':\n                stack.append(a * b)\n            else:\n"
     "                stack.append(int(a / b))\n        else:\n"
     "            stack.append(int(t))\n    return stack[-1]\n",
     _call("evaluate_rpn", ([["2", "1", "+", "3", "*"]], 9), ([["4", "13", "5", "/", "+"]], 6),
           ([["7", "-2", "/"]], -3), ([["42"]], 42))),
    # -- difficulty 5 ------------------------------------------------------------------------
    ("edit_distance", 5,
     "Write a function `edit_distance(a, b)` that returns the Levenshtein distance (insert, "
     "delete or substitute one character per step) between the strings a and b.",
     "def edit_distance(a, b):\n    prev = list(range(len(b) + 1))\n"
     "    for i, x in enumerate(a, 1):\n        cur = [i]\n        for j, y in enumerate(b, 1):\n"
     "            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))\n"
     "        prev = cur\n    return prev[-1]\n",
     _call("edit_distance", (["kitten", "sitting"], 3), (["", "abc"], 3), (["same", "same"], 0),
           (["intention", "execution"], 5))),
    ("n_queens", 5,
     "Write a function `n_queens(n)` that returns the number of ways to place n queens on an "
     "n x n chessboard so that no two attack each other.",
     "def n_queens(n):\n    def place(row, cols, d1, d2):\n        if row == n:\n"
     "            return 1\n        total = 0\n        for c in range(n):\n"
     "            if c not in cols and row - c not in d1 and row + c not in d2:\n"
     "                total += place(row + 1, cols | {c}, d1 | {row - c}, d2 | {row + c})\n"
     "        return total\n    return place(0, set(), set(), set())\n",
     _call("n_queens", ([1], 1), ([4], 2), ([6], 4), ([8], 92))),
    ("shortest_path_stdin", 5,
     "Standard input: the first line holds n and m; each of the next m lines holds an "
     "undirected edge u v w (1-based vertices, weight w >= 0). Print the length of the "
     "shortest path from vertex 1 to vertex n, or -1 if n is unreachable.",
     "import heapq\nimport sys\n\ndata = sys.stdin.read().split()\n"
     "n, m = int(data[0]), int(data[1])\nadj = [[] for _ in range(n + 1)]\n"
     "for k in range(m):\n    u, v, w = (int(x) for x in data[2 + 3 * k: 5 + 3 * k])\n"
     "    adj[u].append((v, w))\n    adj[v].append((u, w))\ndist = {1: 0}\nheap = [(0, 1)]\n"
     "while heap:\n    d, u = heapq.heappop(heap)\n    if d > dist[u]:\n        continue\n"
     "    for v, w in adj[u]:\n        if d + w < dist.get(v, float('inf')):\n"
     "            dist[v] = d + w\n            heapq.heappush(heap, (d + w, v))\n"
     "print(dist.get(n, -1))\n",
     _stdio(("4 4\n1 2 1\n2 4 5\n1 3 2\n3 4 1\n", "3\n"), ("3 1\n1 2 7\n", "-1\n"),
            ("2 1\n1 2 0\n", "0\n"), ("1 0\n", "0\n"))),
    ("lis_length", 5,
     "Write a function `lis_length(nums)` that returns the length of the longest strictly "
     "increasing subsequence of the list nums; it must handle 10^5 elements quickly.",
     "from bisect import bisect_left\n\ndef lis_length(nums):\n    tails = []\n"
     "    for x in nums:\n        i = bisect_left(tails, x)\n        if i == len(tails):\n"
     "            tails.append(x)\n        else:\n            tails[i] = x\n"
     "    return len(tails)\n",
     _call("lis_length", ([[10, 9, 2, 5, 3, 7, 101, 18]], 4), ([[]], 0), ([[5, 5, 5]], 1),
           ([list(range(20_000, 0, -1)) + list(range(20_000))], 20_000))),
    ("merge_intervals", 5,
     "Write a function `merge_intervals(intervals)` that takes a list of [start, end] pairs "
     "and returns the list of merged, non-overlapping [start, end] pairs sorted by start "
     "(intervals that touch, like [1, 2] and [2, 3], merge).",
     "def merge_intervals(intervals):\n    merged = []\n    for s, e in sorted(intervals):\n"
     "        if merged and s <= merged[-1][1]:\n"
     "            merged[-1][1] = max(merged[-1][1], e)\n        else:\n"
     "            merged.append([s, e])\n    return merged\n",
     _call("merge_intervals", ([[[1, 3], [2, 6], [8, 10], [15, 18]]], [[1, 6], [8, 10], [15, 18]]),
           ([[[1, 2], [2, 3]]], [[1, 3]]), ([[]], []), ([[[5, 7], [1, 2]]], [[1, 2], [5, 7]]))),
    ("mean_std_stdin", 5,
     "Standard input holds n on the first line and n real numbers on the second. Print their "
     "mean and their population standard deviation on one line, separated by a space.",
     "n = int(input())\nxs = list(map(float, input().split()))\nmean = sum(xs) / n\n"
     "var = sum((x - mean) ** 2 for x in xs) / n\nprint(mean, var ** 0.5)\n",
     _stdio(("4\n2 4 4 6\n", "4.0 1.4142135623730951\n"), ("1\n3.5\n", "3.5 0\n"),
            ("3\n1 2 3.5\n", "2.1666666666666665 1.0274023338281632\n"), float_tol=1e-6)),
]


@dataclass(frozen=True)
class CodeProblemsConfig:
    """Which of the self-written problems to use."""

    min_difficulty: int = 1
    """Lowest difficulty kept (1 = easiest)."""
    max_difficulty: int = 5
    """Highest difficulty kept (5 = hardest)."""

    def validate(self) -> None:
        require(1 <= self.min_difficulty <= self.max_difficulty <= 5,
                f"need 1 <= min_difficulty <= max_difficulty <= 5, got "
                f"{self.min_difficulty}..{self.max_difficulty}")


class CodeProblemSource(ListSource):
    """The self-written problems of graded difficulty (1 to 5), in a fixed order."""

    name = "code"

    def __init__(self, config: CodeProblemsConfig | None = None) -> None:
        self.config = config or CodeProblemsConfig()
        self.config.validate()
        self.problems = [
            Problem(id=f"code/{slug}", question=question, answer="", solution=fenced(solution),
                    kind="code", tests=tests, difficulty=float(difficulty),
                    meta={"format": tests["format"]})
            for slug, difficulty, question, solution, tests in PROBLEMS
            if self.config.min_difficulty <= difficulty <= self.config.max_difficulty]
        self._index_problems()


register_task("rlvr/CodeProblems-v0", "problems", CodeProblemSource, CodeProblemsConfig,
              kind="code", description="36 Python problems, difficulty 1-5, judged by their tests")
