# LiveCodeBench-style import header, executed in the program's namespace first.
import string, re, datetime, collections, heapq, bisect, copy, math, random, itertools, functools, operator, io, sys, json
from string import *
from re import *
from datetime import *
from collections import *
from heapq import *
from bisect import *
from copy import *
from math import *
from random import *
from itertools import *
from functools import *
from operator import *
from io import *
from sys import *
from json import *
from builtins import *
from typing import *
sys.setrecursionlimit(50000)
