#include <cstdio>

int main() {
  std::puts("bluewhale");
  return 0;
}
